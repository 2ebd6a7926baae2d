/*
 * check_sampling — a C test of the 0.3 sampling extras through libmistral's public API:
 *  1. mistral_generate_ex with n_logprobs: each token's logprob (and its top alternatives) equals log_softmax of
 *     the logits mistral_eval returns for the same context on a second session (within 1e-4);
 *  2. a logit bias of -INFINITY bans a token (the greedy first token is never produced again);
 *  3. a GBNF grammar and a JSON schema constrain the text (checked by hand here: only digits, commas, brackets);
 *  4. bad input: a malformed grammar or schema, mismatched bias arrays, both grammar and schema, NaN bias.
 *
 *   check_sampling MODEL PROMPT
 *
 * Prints one line per check; exits 0 when all pass, 1 otherwise, 2 on usage or setup errors.
 */
#include <mistral.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GEN 24
#define N_TOP 3

typedef struct {
    int32_t tokens[MAX_GEN];
    float logprobs[MAX_GEN];
    mistral_token_logprob top[MAX_GEN][N_TOP];
    size_t n_top[MAX_GEN];
    size_t n;
    char text[4096];
    size_t text_len;
} record;

static int on_info(const mistral_token_info *info, void *user_data) {
    record *r = user_data;
    if (info->token >= 0 && r->n < MAX_GEN) {
        r->tokens[r->n] = info->token;
        r->logprobs[r->n] = info->logprob;
        r->n_top[r->n] = info->n_top < N_TOP ? info->n_top : N_TOP;
        memcpy(r->top[r->n], info->top, r->n_top[r->n] * sizeof info->top[0]);
        r->n++;
    }
    if (info->text_len > 0 && r->text_len + info->text_len < sizeof r->text) {
        memcpy(r->text + r->text_len, info->text, info->text_len);
        r->text_len += info->text_len;
        r->text[r->text_len] = 0;
    }
    return 0;
}

static int failures = 0;
static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

static double log_softmax_at(const float *row, int32_t n, int32_t token) {
    float m = row[0];
    for (int32_t i = 1; i < n; i++) m = row[i] > m ? row[i] : m;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)row[i] - m);
    return (double)row[token] - m - log(sum);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
        return 2;
    }
    mistral_model *model;
    if (mistral_model_load(argv[1], NULL, &model) != MISTRAL_OK) {
        fprintf(stderr, "load: %s\n", mistral_last_error());
        return 2;
    }
    int32_t prompt[1024];
    size_t n_prompt;
    if (mistral_tokenize(model, argv[2], strlen(argv[2]), MISTRAL_TOKENIZE_PARSE_SPECIAL, prompt, 1024, &n_prompt)) {
        fprintf(stderr, "tokenize: %s\n", mistral_last_error());
        return 2;
    }
    int32_t n_vocab = mistral_model_n_vocab(model);
    mistral_session_params sp;
    mistral_session_params_init(&sp);
    sp.n_ctx = 512;
    sp.n_threads = 2;
    mistral_session *a, *b;
    if (mistral_session_create(model, &sp, &a) || mistral_session_create(model, &sp, &b)) {
        fprintf(stderr, "session: %s\n", mistral_last_error());
        return 2;
    }

    /* 1. logprobs against mistral_eval */
    mistral_generate_params gp;
    mistral_generate_params_init(&gp);
    check(gp.grammar == NULL && gp.json_schema == NULL && gp.n_logit_bias == 0 && gp.n_logprobs == 0, "new defaults");
    gp.max_tokens = MAX_GEN;
    gp.temperature = 0.8f;
    gp.seed = 42;
    gp.n_logprobs = N_TOP;
    gp.flags = MISTRAL_GENERATE_IGNORE_EOS;
    static record r;
    mistral_status st = mistral_generate_ex(a, prompt, n_prompt, &gp, on_info, &r);
    check(st == MISTRAL_OK && r.n == MAX_GEN, "mistral_generate_ex reports every token");
    /* session b replays what a computed: the prompt in one call (its last row of logits precedes token 0), then
     * each generated token on its own */
    float *rows = malloc(n_prompt * (size_t)n_vocab * sizeof *rows);
    float *row = rows + (n_prompt - 1) * (size_t)n_vocab;
    double worst = 0;
    int top_ok = 1;
    if (!rows || mistral_eval(b, prompt, n_prompt, rows) != MISTRAL_OK) return 2;
    for (size_t i = 0; i < r.n; i++) {
        if (i > 0 && mistral_eval(b, &r.tokens[i - 1], 1, row) != MISTRAL_OK) return 2;
        double d = fabs(log_softmax_at(row, n_vocab, r.tokens[i]) - r.logprobs[i]);
        worst = d > worst ? d : worst;
        for (size_t k = 0; k < r.n_top[i]; k++) {
            if (fabs(log_softmax_at(row, n_vocab, r.top[i][k].token) - r.top[i][k].logprob) > 1e-4) top_ok = 0;
            if (k > 0 && r.top[i][k].logprob > r.top[i][k - 1].logprob) top_ok = 0;
        }
        if (r.n_top[i] != N_TOP || r.logprobs[i] > r.top[i][0].logprob + 1e-6) top_ok = 0;
    }
    printf("max |logprob - log_softmax(mistral_eval logits)| = %.3g\n", worst);
    check(worst < 1e-4, "logprobs equal log_softmax of mistral_eval's logits");
    check(top_ok, "top alternatives are the most likely tokens, in order, with their log_softmax");

    /* 2. -INFINITY bans the greedy first token */
    mistral_generate_params g0;
    mistral_generate_params_init(&g0);
    g0.temperature = 0;
    g0.max_tokens = 1;
    g0.flags = MISTRAL_GENERATE_LOGPROBS;
    memset(&r, 0, sizeof r);
    mistral_session_reset(a);
    mistral_generate_ex(a, prompt, n_prompt, &g0, on_info, &r);
    int32_t greedy = r.tokens[0];
    float ban = -INFINITY;
    g0.logit_bias_tokens = &greedy;
    g0.logit_bias_values = &ban;
    g0.n_logit_bias = 1;
    g0.max_tokens = 8;
    memset(&r, 0, sizeof r);
    mistral_session_reset(a);
    st = mistral_generate_ex(a, prompt, n_prompt, &g0, on_info, &r);
    int banned_seen = 0;
    for (size_t i = 0; i < r.n; i++) banned_seen |= r.tokens[i] == greedy;
    check(st == MISTRAL_OK && r.n > 0 && !banned_seen, "a -INFINITY bias bans the token");

    /* 3. a grammar: a list of integers */
    mistral_generate_params gg;
    mistral_generate_params_init(&gg);
    gg.grammar = "root ::= \"[\" [0-9]{1,3} (\", \" [0-9]{1,3}){0,4} \"]\"\n";
    gg.max_tokens = 64;
    gg.seed = 7;
    memset(&r, 0, sizeof r);
    mistral_session_reset(a);
    st = mistral_generate_ex(a, prompt, n_prompt, &gg, on_info, &r);
    int shape = r.text_len >= 3 && r.text[0] == '[' && r.text[r.text_len - 1] == ']';
    for (size_t i = 1; i + 1 < r.text_len; i++) shape &= strchr("0123456789, ", r.text[i]) != NULL;
    printf("grammar output: %s\n", r.text);
    check(st == MISTRAL_OK && mistral_session_last_stop_reason(a) == MISTRAL_STOP_EOG && shape,
          "a GBNF grammar constrains the text and ends it");

    /* 4. bad input */
    mistral_generate_params bad;
    mistral_generate_params_init(&bad);
    bad.grammar = "root ::= \"a\" |\nitem ::= [z-a]";
    st = mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL);
    check(st == MISTRAL_ERR_INVALID_ARGUMENT && strstr(mistral_last_error(), "line 2") != NULL, "bad grammar: status + position");
    mistral_generate_params_init(&bad);
    bad.json_schema = "{\"type\": \"object\", \"properties\": 3}";
    st = mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL);
    check(st == MISTRAL_ERR_INVALID_ARGUMENT && strstr(mistral_last_error(), "json_schema") != NULL, "bad schema: status");
    mistral_generate_params_init(&bad);
    bad.grammar = "root ::= \"a\"";
    bad.json_schema = "{}";
    check(mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL) == MISTRAL_ERR_INVALID_ARGUMENT, "grammar and schema: refused");
    mistral_generate_params_init(&bad);
    bad.logit_bias_tokens = &greedy;
    bad.n_logit_bias = 1;
    st = mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL);
    check(st == MISTRAL_ERR_INVALID_ARGUMENT && strstr(mistral_last_error(), "logit_bias") != NULL, "bias values NULL: refused");
    float nan_bias = NAN;
    int32_t outside = n_vocab;
    bad.logit_bias_values = &nan_bias;
    check(mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL) == MISTRAL_ERR_INVALID_ARGUMENT, "NaN bias: refused");
    bad.logit_bias_tokens = &outside;
    bad.logit_bias_values = &ban;
    check(mistral_generate(a, prompt, n_prompt, &bad, NULL, NULL) == MISTRAL_ERR_INVALID_ARGUMENT, "bias token outside vocab: refused");
    size_t need = 0;
    check(mistral_json_schema_to_grammar("{\"type\": \"integer\"}", NULL, 0, &need) == MISTRAL_ERR_BUFFER_TOO_SMALL && need > 0,
          "mistral_json_schema_to_grammar reports the size it needs");

    free(rows);
    mistral_session_free(a);
    mistral_session_free(b);
    mistral_model_free(model);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
