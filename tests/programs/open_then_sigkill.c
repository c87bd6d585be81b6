/* Opens N files, then is killed with SIGKILL: what it recorded before the
 * kill must reach the trace. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/nonexistent/killed-%d", i);
        open(path, O_RDONLY);
    }
    kill(getpid(), SIGKILL);
    return 0;
}
