/*
 * mistral_client — a small C client of libmistral: loads a model, tokenizes a prompt, and streams a generation
 * through a callback (which can stop it after --stop-after pieces). With --image, the prompt becomes a chat user
 * message showing that image: the client prints the image's token grid, embeds it with mistral_image_embed, and
 * answers through mistral_session_eval_chat + mistral_generate.
 *
 *   mistral_client MODEL PROMPT [-n MAX_TOKENS] [--temp T] [--seed S] [-t THREADS] [--stop-after N] [--ignore-eos]
 *                  [--image FILE] [--tokenizer tekken.json] [--mmproj MMPROJ.gguf]
 *
 * Exit status: 0 on success, 1 on a library error (its status name and message are printed on stderr), 2 on usage.
 */
#include <mistral.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stream_state {
    long pieces;
    long stop_after; /* stop after this many pieces; <0: never */
};

static int on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    struct stream_state *st = (struct stream_state *)user_data;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    st->pieces++;
    return st->stop_after >= 0 && st->pieces >= st->stop_after;
}

static int fail(const char *what, mistral_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, mistral_status_string(status), mistral_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [-n N] [--temp T] [--seed S] [-t THREADS] [--stop-after N] [--ignore-eos]\n",
                argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const char *prompt = argv[2];

    mistral_session_params sparams;
    mistral_session_params_init(&sparams);
    mistral_generate_params gparams;
    mistral_generate_params_init(&gparams);
    gparams.temperature = 0.0f;
    gparams.max_tokens = 64;
    struct stream_state st = {0, -1};
    const char *image_path = NULL;
    mistral_model_params mparams;
    mistral_model_params_init(&mparams);

    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ignore-eos") == 0) { gparams.flags |= MISTRAL_GENERATE_IGNORE_EOS; continue; }
        if (!v) { fprintf(stderr, "option %s needs a value\n", a); return 2; }
        if (strcmp(a, "-n") == 0) gparams.max_tokens = atoi(v);
        else if (strcmp(a, "--temp") == 0) gparams.temperature = (float)atof(v);
        else if (strcmp(a, "--seed") == 0) gparams.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "-t") == 0) sparams.n_threads = atoi(v);
        else if (strcmp(a, "--stop-after") == 0) st.stop_after = atol(v);
        else if (strcmp(a, "--image") == 0) image_path = v;
        else if (strcmp(a, "--tokenizer") == 0) mparams.tokenizer_path = v;
        else if (strcmp(a, "--mmproj") == 0) mparams.mmproj_path = v;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }

    if (mistral_version_number() != MISTRAL_VERSION_NUMBER)
        fprintf(stderr, "warning: header %s, library %s\n", MISTRAL_VERSION_STRING, mistral_version());

    mistral_model *model = NULL;
    mistral_status rc = mistral_model_load(model_path, &mparams, &model);
    if (rc != MISTRAL_OK) return fail("mistral_model_load", rc);
    fprintf(stderr, "model: %s\n", mistral_model_desc(model));

    mistral_session *session = NULL;
    int32_t *tokens = NULL;
    size_t n_tokens = 0;
    if (image_path) {
        mistral_image *image = NULL;
        rc = mistral_image_load_file(image_path, &image);
        if (rc != MISTRAL_OK) { mistral_model_free(model); return fail("mistral_image_load_file", rc); }
        uint32_t rows = 0, cols = 0;
        size_t n_rows = 0;
        rc = mistral_image_token_grid(model, mistral_image_width(image), mistral_image_height(image), &rows, &cols);
        if (rc == MISTRAL_OK) {
            /* Ask for the row count first, then embed into a buffer of that size. */
            rc = mistral_image_embed(model, mistral_image_rgb(image), mistral_image_width(image),
                                     mistral_image_height(image), NULL, 0, &n_rows);
            float *rows_buf = rc == MISTRAL_ERR_BUFFER_TOO_SMALL
                ? malloc(n_rows * (size_t)mistral_model_n_embd(model) * sizeof(float)) : NULL;
            rc = rows_buf ? mistral_image_embed(model, mistral_image_rgb(image), mistral_image_width(image),
                                                mistral_image_height(image), rows_buf, n_rows, &n_rows)
                          : MISTRAL_ERR_INTERNAL;
            free(rows_buf);
        }
        if (rc != MISTRAL_OK) { mistral_image_free(image); mistral_model_free(model); return fail("mistral_image_embed", rc); }
        fprintf(stderr, "image: %ux%u pixels, %ux%u tokens, %zu embedding rows\n", mistral_image_width(image),
                mistral_image_height(image), rows, cols, n_rows);
        rc = mistral_session_create(model, &sparams, &session);
        if (rc == MISTRAL_OK) {
            const mistral_image *images[1] = {image};
            mistral_chat_message msg = {"user", prompt, images, 1};
            rc = mistral_session_eval_chat(session, NULL, &msg, 1);
        }
        mistral_image_free(image); /* the session keeps what it needs */
        if (rc != MISTRAL_OK) {
            mistral_session_free(session);
            mistral_model_free(model);
            return fail("mistral_session_eval_chat", rc);
        }
        fprintf(stderr, "prompt: %u positions\n", mistral_session_n_past(session));
    } else {
        /* Ask for the size first, then tokenize into a buffer of that size. */
        uint32_t flags = MISTRAL_TOKENIZE_PARSE_SPECIAL;
        rc = mistral_tokenize(model, prompt, strlen(prompt), flags, NULL, 0, &n_tokens);
        if (rc != MISTRAL_OK && rc != MISTRAL_ERR_BUFFER_TOO_SMALL) { mistral_model_free(model); return fail("mistral_tokenize", rc); }
        tokens = malloc((n_tokens ? n_tokens : 1) * sizeof *tokens);
        if (!tokens) { mistral_model_free(model); return 1; }
        rc = mistral_tokenize(model, prompt, strlen(prompt), flags, tokens, n_tokens, &n_tokens);
        if (rc != MISTRAL_OK) { free(tokens); mistral_model_free(model); return fail("mistral_tokenize", rc); }
        fprintf(stderr, "prompt: %zu tokens\n", n_tokens);
        rc = mistral_session_create(model, &sparams, &session);
        if (rc != MISTRAL_OK) { free(tokens); mistral_model_free(model); return fail("mistral_session_create", rc); }
    }

    rc = mistral_generate(session, tokens, n_tokens, &gparams, on_piece, &st);
    printf("\n");
    int exit_code = 0;
    if (rc == MISTRAL_ERR_CANCELLED) {
        fprintf(stderr, "stopped by callback after %ld pieces\n", st.pieces);
    } else if (rc != MISTRAL_OK) {
        exit_code = fail("mistral_generate", rc);
    }
    fprintf(stderr, "generated %u tokens, stop reason %d, n_past %u\n", mistral_session_last_n_generated(session),
            mistral_session_last_stop_reason(session), mistral_session_n_past(session));

    mistral_session_free(session);
    free(tokens);
    mistral_model_free(model);
    return exit_code;
}
