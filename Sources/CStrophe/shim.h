#include <strophe.h>
#include <pthread.h>

/* Declared here: glibc has it, but Swift's Glibc module does not define _GNU_SOURCE. */
int pthread_setname_np(pthread_t thread, const char *name);

/* Names the calling thread (at most 15 bytes show). Foundation's Thread.name setter, used from
   a new thread, can name the thread that created it instead: it uses a field the creator fills
   in after the new thread may already be running. */
static inline int baton_name_this_thread(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#ifdef __linux__
/* Declared here for the same reason (glibc 2.28 and later have it). */
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
#endif

/* rename() that fails with EEXIST instead of replacing `to`, in one step: two agents placing
   files into one spool directory cannot overwrite each other's. Fails with EINVAL where the
   file system cannot (then SpoolWatcher.moveWithoutReplacing renames over a placeholder of
   its own), ENOSYS off Linux. */
static inline int baton_rename_noreplace(const char *from, const char *to) {
#ifdef __linux__
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */);
#else
    errno = ENOSYS;
    return -1;
#endif
}
