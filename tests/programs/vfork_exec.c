/* vfork children: one execs, one makes a traced call and _exits. */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    pid_t pid = vfork();
    if (pid == 0) {
        char *argv[] = {"cat", "/etc/hostname", NULL};
        execv("/bin/cat", argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    pid = vfork();
    if (pid == 0) {
        int fd = open("/etc/hostname", O_RDONLY);
        _exit(fd >= 0 ? 0 : 3);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 2;
    return 0;
}
