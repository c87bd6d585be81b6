/* The C side of libsubstrate_preload.so.
 *
 * - open/openat and their 64-bit twins are C-variadic: the mode is read with
 *   va_arg only when the flags say there is one, then Rust does the work.
 * - The constructor receives argc/argv/envp from glibc (musl passes none, so
 *   the library stays inert unless glibc is what loaded it).
 * - glibc-only symbols are weak, so that musl's loader, which refuses a
 *   library with an unresolved strong symbol, still loads this one.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

extern int substrate_openat(int dirfd, const char *path, int flags, mode_t mode, int call);
extern void substrate_init(int argc, char **argv, char **envp);
extern void substrate_after_fork_child(void);

/* FileCall values (ring::FileCall). */
#define CALL_OPEN 1
#define CALL_OPENAT 2

extern const char *gnu_get_libc_version(void) __attribute__((weak));
extern int __register_atfork(void (*prepare)(void), void (*parent)(void),
                             void (*child)(void), void *dso) __attribute__((weak));
extern void *__dso_handle;

static int has_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

#define MODE_ARG(flags)                   \
    mode_t mode = 0;                      \
    if (has_mode(flags)) {                \
        va_list ap;                       \
        va_start(ap, flags);              \
        mode = va_arg(ap, mode_t);        \
        va_end(ap);                       \
    }

__attribute__((visibility("default"))) int open(const char *path, int flags, ...)
{
    MODE_ARG(flags);
    return substrate_openat(AT_FDCWD, path, flags, mode, CALL_OPEN);
}

__attribute__((visibility("default"))) int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags);
    return substrate_openat(AT_FDCWD, path, flags, mode, CALL_OPEN);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags);
    return substrate_openat(dirfd, path, flags, mode, CALL_OPENAT);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags);
    return substrate_openat(dirfd, path, flags, mode, CALL_OPENAT);
}

__attribute__((constructor)) static void substrate_constructor(int argc, char **argv, char **envp)
{
    if (gnu_get_libc_version == NULL || argv == NULL)
        return; /* not glibc: stay inert */
    substrate_init(argc, argv, envp);
    /* A forked child gets a ring of its own; vfork children do not run
     * atfork handlers and keep writing to their parent's ring. */
    if (__register_atfork != NULL)
        __register_atfork(NULL, NULL, substrate_after_fork_child, __dso_handle);
}
