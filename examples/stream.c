/*
 * stream.c — stream a completion from libmistral, token by token.
 *
 *   cc -Iinclude examples/stream.c -L.build/release -lmistral -Wl,-rpath,"$PWD/.build/release" -o stream
 *   ./stream models/SmolLM2-135M-Instruct.Q4_1.gguf "Once upon a time" 64
 *
 * The rpath is absolute ($PWD expanded by the shell), so ./stream finds libmistral.so from any directory; a
 * system-wide install (the libmistral0 package) needs none: cc stream.c $(pkg-config --cflags --libs mistral).
 */
#include <mistral.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* keep going */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    mistral_model *model = NULL;
    mistral_session *session = NULL;
    int32_t tokens[4096];
    size_t n = 0;
    int rc = 1;

    if (mistral_model_load(argv[1], NULL, &model) != MISTRAL_OK) goto error;
    uint32_t flags = MISTRAL_TOKENIZE_PARSE_SPECIAL | (mistral_model_add_bos(model) ? MISTRAL_TOKENIZE_ADD_BOS : 0);
    if (mistral_tokenize(model, argv[2], strlen(argv[2]), flags, tokens, 4096, &n) != MISTRAL_OK) goto error;
    if (mistral_session_create(model, NULL, &session) != MISTRAL_OK) goto error;

    mistral_generate_params params;
    mistral_generate_params_init(&params);
    params.max_tokens = argc > 3 ? atoi(argv[3]) : 128;
    fputs(argv[2], stdout);
    if (mistral_generate(session, tokens, n, &params, print_piece, NULL) != MISTRAL_OK) goto error;
    putchar('\n');
    rc = 0;
    goto done;
error:
    fprintf(stderr, "error: %s\n", mistral_last_error());
done:
    mistral_session_free(session);
    mistral_model_free(model);
    return rc;
}
