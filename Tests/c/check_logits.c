/*
 * check_logits — a C test of libmistral's public API: loads a model (any format), evaluates prompt ids with
 * mistral_eval, and compares every position's logits with a reference .npy (float32, C order).
 *
 *   check_logits MODEL TOKENIZER_OR_- IDS(comma-separated) REFERENCE.npy TOLERANCE
 *
 * Prints the max |diff| and exits 0 when it is below TOLERANCE, 1 otherwise (2 on usage or API errors).
 */
#include <mistral.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_npy(const char *path, size_t expected) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[10];
    float *data = NULL;
    if (fread(head, 1, 10, f) == 10 && memcmp(head, "\x93NUMPY", 6) == 0 && head[6] == 1) {
        size_t header_len = (size_t)head[8] | (size_t)head[9] << 8;
        if (fseek(f, (long)(10 + header_len), SEEK_SET) == 0) {
            data = malloc(expected * sizeof *data);
            if (data && fread(data, sizeof *data, expected, f) != expected) {
                free(data);
                data = NULL;
            }
        }
    }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER|- IDS REFERENCE.npy TOLERANCE\n", argv[0]);
        return 2;
    }
    int32_t ids[4096];
    size_t n = 0;
    for (char *tok = strtok(argv[3], ","); tok && n < 4096; tok = strtok(NULL, ",")) ids[n++] = (int32_t)atoi(tok);
    double tolerance = atof(argv[5]);

    mistral_model_params mp;
    mistral_model_params_init(&mp);
    if (strcmp(argv[2], "-") != 0) mp.tokenizer_path = argv[2];
    mistral_model *model = NULL;
    mistral_status rc = mistral_model_load(argv[1], &mp, &model);
    if (rc != MISTRAL_OK) {
        fprintf(stderr, "load: %s: %s\n", mistral_status_string(rc), mistral_last_error());
        return 2;
    }
    size_t vocab = (size_t)mistral_model_n_vocab(model);
    mistral_session *session = NULL;
    mistral_session_params sp;
    mistral_session_params_init(&sp);
    sp.kv_type = MISTRAL_KV_F32; /* compared against float references: no f16 rounding of keys/values */
    rc = mistral_session_create(model, &sp, &session);
    float *logits = malloc(n * vocab * sizeof *logits);
    float *ref = read_npy(argv[4], n * vocab);
    int exit_code = 2;
    if (rc == MISTRAL_OK && logits && ref && (rc = mistral_eval(session, ids, n, logits)) == MISTRAL_OK) {
        double max_diff = 0;
        for (size_t i = 0; i < n * vocab; i++) {
            double d = fabs((double)logits[i] - (double)ref[i]);
            if (!(d <= max_diff)) max_diff = d; /* also catches NaN */
        }
        printf("max_abs_diff %.9g over %zu x %zu logits\n", max_diff, n, vocab);
        exit_code = max_diff < tolerance ? 0 : 1;
    } else {
        fprintf(stderr, "error: %s: %s\n", mistral_status_string(rc), mistral_last_error());
    }
    free(ref);
    free(logits);
    mistral_session_free(session);
    mistral_model_free(model);
    return exit_code;
}
