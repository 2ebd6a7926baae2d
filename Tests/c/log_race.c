/* mistral_log_set against threads that keep logging: once mistral_log_set returns, the old callback must never run
 * again with the old user_data (which a program would now free). Each user_data is retired right after it is
 * replaced; a call that sees a retired one is a "late call". Usage: log_race TOKENIZER.json */
#include <mistral.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    atomic_int retired;
} sink;

static atomic_long late_calls, calls;
static atomic_int stop;
static const char *path;

static void on_log(int32_t level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    sink *s = user_data;
    atomic_fetch_add(&calls, 1);
    /* stay inside a while, so a mistral_log_set that does not wait for running callbacks is caught */
    for (volatile int spin = 0; spin < 20000; spin++) {}
    if (atomic_load(&s->retired)) atomic_fetch_add(&late_calls, 1);
}

static void *loader(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        mistral_model *m = NULL;
        if (mistral_model_load(path, NULL, &m) == MISTRAL_OK) mistral_model_free(m);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    path = argv[1];
    enum { ROUNDS = 400, THREADS = 2 };
    sink *sinks = calloc(ROUNDS, sizeof(sink));
    if (!sinks) return 1;
    mistral_log_set(on_log, MISTRAL_LOG_INFO, &sinks[0]);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, loader, NULL);
    for (int r = 1; r < ROUNDS; r++) {
        while (atomic_load(&calls) < r) { /* let some calls happen with this sink */ }
        mistral_log_set(on_log, MISTRAL_LOG_INFO, &sinks[r]);
        atomic_store(&sinks[r - 1].retired, 1); /* a real program would free it here */
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    mistral_log_set(NULL, MISTRAL_LOG_ERROR, NULL);
    printf("calls: %ld, late calls: %ld\n", atomic_load(&calls), atomic_load(&late_calls));
    free(sinks);
    return atomic_load(&late_calls) == 0 ? 0 : 1;
}
