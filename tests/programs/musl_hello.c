/* Built with musl-gcc: a musl program handed the glibc tracer through
 * LD_PRELOAD must run as if it were not there. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[256];
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd < 0)
        return 2;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    printf("musl read %zd bytes\n", n);
    return 0;
}
