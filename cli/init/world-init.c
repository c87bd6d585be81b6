/* substrate-init: PID 1 of a substrate-cli world, as tini is for
 * `docker run --init` and catatonit for podman.
 *
 *   /.substrate-init [--lifeline=FD] -- COMMAND [ARG]...
 *
 * The command runs as its child, in a process group of its own. Signals sent
 * to the init (Ctrl-C passed on by substrate-cli, `substrate-cli stop` and
 * `kill`) go to that group: a plain program no longer ignores SIGINT and
 * SIGTERM for being PID 1 (the kernel drops a signal to a namespace's init
 * that has no handler for it, pid_namespaces(7)). Every process orphaned in
 * the world is reparented to the init and reaped, so no zombie piles up.
 * When the command exits, the init exits with its status (128+N when signal
 * N killed it, as a shell reports it), and the kernel kills whatever is left
 * in the namespace.
 *
 * --lifeline=FD names the read end of a pipe whose write end only the
 * substrate-cli running the world in the foreground holds. When that process
 * is gone, however it ended (SIGKILL included), the pipe reads EOF and the
 * init kills the world: a foreground world never outlives its CLI. The init
 * is not dumpable, so no process of the world can reopen the pipe through
 * /proc/1/fd and keep it alive.
 *
 * substrate-cli embeds this program (cli/build.rs builds it static, with
 * musl-gcc when there is one) and bind-mounts it read-only at
 * /.substrate-init, so it runs in every world: the host's rootfs, a busybox
 * rootfs without a libc, any bundle. It must stay small and use nothing
 * Docker's default seccomp profile refuses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The init's own failures, as `docker run` reports its own (the command's
 * statuses are passed through unchanged). */
#define INIT_FAILED 125

static void fail(const char *what)
{
    fprintf(stderr, "substrate-init: %s: %s\n", what, strerror(errno));
    _exit(INIT_FAILED);
}

static void usage(void)
{
    fputs("usage: substrate-init [--lifeline=FD] -- COMMAND [ARG]...\n", stderr);
    _exit(INIT_FAILED);
}

/* Faults raised by the init's own code stay deliverable (blocked, they would
 * make the kernel kill it without a word). */
static const int SYNCHRONOUS[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS};

static int parse_fd(const char *text)
{
    char *end;
    errno = 0;
    long fd = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || fd < 0 || fd > 1024)
        usage();
    return (int)fd;
}

/* Sends `signal` to the command's process group; to the command alone if the
 * group is gone (the command made a session or group of its own). */
static void forward(pid_t child, int signal)
{
    if (kill(-child, signal) != 0 && errno == ESRCH)
        kill(child, signal);
}

/* The CLI that ran the world in the foreground is gone: so is the world. */
static void lifeline_lost(pid_t child)
{
    if (getpid() == 1) {
        /* PID 1 of its own namespace: -1 is every other process in it. */
        kill(-1, SIGKILL);
    } else {
        /* No pid namespace (a bundle without one): -1 would be the host's
         * processes. The command's group only. */
        forward(child, SIGKILL);
    }
    _exit(128 + SIGKILL);
}

static int exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return INIT_FAILED;
}

int main(int argc, char **argv)
{
    /* First: a signal sent before it is blocked would be dropped (PID 1
     * without a handler), and substrate-cli waits for this to pass one on. */
    sigset_t all, original;
    sigfillset(&all);
    for (size_t s = 0; s < sizeof SYNCHRONOUS / sizeof SYNCHRONOUS[0]; s++)
        sigdelset(&all, SYNCHRONOUS[s]);
    if (sigprocmask(SIG_SETMASK, &all, &original) != 0)
        fail("sigprocmask");

    int lifeline = -1;
    int i = 1;
    for (; i < argc; i++) {
        if (strncmp(argv[i], "--lifeline=", 11) == 0)
            lifeline = parse_fd(argv[i] + 11);
        else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else
            usage();
    }
    if (i >= argc)
        usage();
    char **command = argv + i;

    if (lifeline >= 0) {
        struct stat st;
        /* Fail closed: a world that was promised a lifeline and has none
         * could outlive its CLI. */
        if (fstat(lifeline, &st) != 0)
            fail("lifeline");
        if (!S_ISFIFO(st.st_mode)) {
            errno = EBADF;
            fail("lifeline is not a pipe");
        }
        if (fcntl(lifeline, F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(lifeline, F_SETFL, fcntl(lifeline, F_GETFL) | O_NONBLOCK) != 0)
            fail("lifeline");
    }
    /* Not dumpable: /proc/1/fd (the lifeline) is out of reach of the
     * world's processes, which lack CAP_SYS_PTRACE. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fail("prctl(PR_SET_DUMPABLE)");
    /* Without a pid namespace of its own, orphans come here all the same. */
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        fail("prctl(PR_SET_CHILD_SUBREAPER)");

    int signals = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0)
        fail("signalfd");

    pid_t child = fork();
    if (child < 0)
        fail("fork");
    if (child == 0) {
        setpgid(0, 0);
        /* With a terminal, the command's group is its foreground (SIGTTOU
         * is still blocked here, so this cannot stop us). */
        if (isatty(STDIN_FILENO))
            tcsetpgrp(STDIN_FILENO, getpgrp());
        sigprocmask(SIG_SETMASK, &original, NULL);
        execvp(command[0], command);
        int error = errno;
        fprintf(stderr, "substrate-init: cannot run %s: %s\n", command[0], strerror(error));
        /* As a shell says it: 127 not found, 126 found but not runnable. */
        _exit(error == ENOENT || error == ENOTDIR ? 127 : 126);
    }
    /* Also here, so a signal forwarded before the child ran finds its group. */
    setpgid(child, child);

    struct pollfd fds[2] = {
        {.fd = signals, .events = POLLIN},
        {.fd = lifeline, .events = POLLIN},
    };
    nfds_t nfds = lifeline >= 0 ? 2 : 1;
    for (;;) {
        if (poll(fds, nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail("poll");
        }
        if (nfds == 2 && fds[1].revents != 0) {
            char buf[64];
            ssize_t n = read(lifeline, buf, sizeof buf);
            /* Nothing is ever written: EOF (or an error) is the end. */
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                lifeline_lost(child);
        }
        struct signalfd_siginfo info;
        while (read(signals, &info, sizeof info) == (ssize_t)sizeof info) {
            if (info.ssi_signo != SIGCHLD)
                forward(child, (int)info.ssi_signo);
        }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            if (pid == child)
                _exit(exit_status(status));
        }
    }
}
