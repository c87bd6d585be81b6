/* Threads busy in traced calls while the main thread forks: each child
 * opens a file of its own and exits. The children must not deadlock (no
 * lock is held across fork by the tracer) and their calls must be theirs. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *spin(void *arg)
{
    (void)arg;
    while (!stop) {
        int fd = open("/etc/hostname", O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, spin, NULL);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char path[64];
            snprintf(path, sizeof path, "/tmp/forked-child-%d", i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                _exit(2);
            close(fd);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    stop = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
