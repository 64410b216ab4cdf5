/* The pod sandbox's process for the CRI test: it holds the pod's namespaces and does nothing
 * else, until it is told to stop. Built static (`gcc -static`), so its image needs no libc. */
#include <signal.h>
#include <unistd.h>

static void stop(int signal) {
    (void)signal;
    _exit(0);
}

int main(void) {
    /* As the pid namespace's first process it gets no default signal actions: ask for them. */
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    for (;;)
        pause();
}
