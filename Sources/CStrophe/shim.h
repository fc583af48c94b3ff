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
