/* The C side of libsubstrate_preload.so.
 *
 * - The constructor receives argc/argv/envp from glibc (musl passes none, so
 *   the library stays inert unless glibc is what loaded it).
 * - glibc-only symbols are weak, so that musl's loader, which refuses a
 *   library with an unresolved strong symbol, still loads this one.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

extern void substrate_init(int argc, char **argv, char **envp);
extern void substrate_after_fork_child(void);

extern const char *gnu_get_libc_version(void) __attribute__((weak));
extern int __register_atfork(void (*prepare)(void), void (*parent)(void),
                             void (*child)(void), void *dso) __attribute__((weak));
extern void *__dso_handle;

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
