/* Built static with musl-gcc: connects to <address>:<port> (address
 * 127.0.0.1 unless given) with the raw syscall (no libc wrapper, no
 * preload: only the kernel sees it), and exits with the errno it got (0 if
 * connected). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 100;
    long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 101;
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_port = htons(atoi(argv[1])),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    if (argc > 2 && inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1)
        return 102;
    long ret = syscall(SYS_connect, fd, &addr, sizeof addr);
    return ret == 0 ? 0 : errno;
}
