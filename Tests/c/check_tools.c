/* Tool calling through the C API alone.
 *   check_tools render TEKKEN_JSON TEMPLATE|-  < cases   (pairs of lines: a JSON request, then the expected ids)
 *   check_tools parse TEKKEN_JSON                        (tool-call parsing on given outputs)
 * Prints "N cases equal" / "parse checks passed" and exits 0 when everything matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mistral.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
            printf(__VA_ARGS__);                           \
            printf(" (%s)\n", mistral_last_error());       \
            failures++;                                    \
        }                                                  \
    } while (0)

/* Reads one line of any length; NULL at end of input. */
static char *read_line(FILE *f) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int c;
    if (!buf) return NULL;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) { free(buf); return NULL; }
            buf = bigger;
        }
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) { free(buf); return NULL; }
    buf[n] = '\0';
    return buf;
}

static int render(const mistral_model *model, const char *template_name) {
    int cases = 0;
    char *request;
    while ((request = read_line(stdin)) != NULL) {
        char *expected = read_line(stdin);
        if (!expected) { free(request); break; }
        size_t n = 0, n_expected = 0;
        int32_t want[16384];
        for (char *p = strtok(expected, " "); p && n_expected < 16384; p = strtok(NULL, " ")) want[n_expected++] = atoi(p);
        /* first ask for the size, then render into a buffer of exactly that size */
        mistral_status st = mistral_chat_tokenize_json(model, template_name, request, strlen(request), NULL, 0,
                                                       MISTRAL_CHAT_ADD_GENERATION_PROMPT, NULL, 0, &n);
        CHECK(st == MISTRAL_ERR_BUFFER_TOO_SMALL && n == n_expected, "case %d: size %zu, want %zu", cases, n, n_expected);
        int32_t *got = malloc((n ? n : 1) * sizeof *got);
        st = mistral_chat_tokenize_json(model, template_name, request, strlen(request), NULL, 0,
                                        MISTRAL_CHAT_ADD_GENERATION_PROMPT, got, n, &n);
        CHECK(st == MISTRAL_OK, "case %d: status %d", cases, (int)st);
        int equal = st == MISTRAL_OK && n == n_expected && memcmp(got, want, n * sizeof *got) == 0;
        CHECK(equal, "case %d: ids differ", cases);
        free(got);
        free(request);
        free(expected);
        cases++;
    }
    if (failures == 0) printf("%d cases equal\n", cases);
    return failures == 0 ? 0 : 1;
}

/* Tokenizes `text` with special tokens parsed (so "[TOOL_CALLS]" is the control token) and parses the calls. */
static mistral_status parse_tokens(const mistral_model *model, const char *text, mistral_tool_calls **calls) {
    int32_t ids[4096];
    size_t n = 0;
    if (mistral_tokenize(model, text, strlen(text), MISTRAL_TOKENIZE_PARSE_SPECIAL, ids, 4096, &n) != MISTRAL_OK) {
        return MISTRAL_ERR_INTERNAL;
    }
    return mistral_tool_calls_parse(model, ids, n, calls);
}

static int is_call_id(const char *id) {
    if (!id || strlen(id) != 9) return 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 0;
    }
    return 1;
}

static void check_call(const mistral_tool_calls *calls, size_t i, const char *name, const char *args, const char *id) {
    CHECK(mistral_tool_calls_name(calls, i) && strcmp(mistral_tool_calls_name(calls, i), name) == 0, "call %zu name", i);
    CHECK(mistral_tool_calls_arguments(calls, i) && strcmp(mistral_tool_calls_arguments(calls, i), args) == 0,
          "call %zu arguments: %s", i, mistral_tool_calls_arguments(calls, i));
    CHECK(is_call_id(mistral_tool_calls_id(calls, i)), "call %zu id", i);
    if (id) CHECK(strcmp(mistral_tool_calls_id(calls, i), id) == 0, "call %zu id value", i);
}

static int parse(const mistral_model *model) {
    mistral_tool_calls *calls = NULL;
    size_t n_ids = 0;
    /* one call, from tokens and from text */
    const char *one = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}, \"id\": \"a1b2c3d4e\"}]";
    for (int via_text = 0; via_text < 2; via_text++) {
        mistral_status st = via_text ? mistral_tool_calls_parse_text(one, strlen(one), &calls) : parse_tokens(model, one, &calls);
        CHECK(st == MISTRAL_OK && mistral_tool_calls_count(calls) == 1, "one call (via text %d)", via_text);
        if (st == MISTRAL_OK) check_call(calls, 0, "get_weather", "{\"city\": \"Paris\"}", "a1b2c3d4e");
        CHECK(mistral_tool_calls_content(calls) && strcmp(mistral_tool_calls_content(calls), "") == 0, "content");
        CHECK(mistral_tool_calls_name(calls, 1) == NULL, "index past the end");
        mistral_tool_calls_free(calls);
    }
    /* parallel calls, nested JSON with non-ASCII, a missing id */
    const char *parallel =
        "Checking.[TOOL_CALLS][{\"name\": \"book\", \"arguments\": {\"city\": \"Z\xc3\xbcrich\", \"rooms\": "
        "[{\"beds\": 2, \"note\": \"\xe2\x9d\x84\"}], \"price\": 1.50}, \"id\": \"Zz9Yy8Xx7\"}, "
        "{\"name\": \"get_time\", \"arguments\": {}}]";
    CHECK(parse_tokens(model, parallel, &calls) == MISTRAL_OK && mistral_tool_calls_count(calls) == 2, "parallel");
    if (mistral_tool_calls_count(calls) == 2) {
        check_call(calls, 0, "book",
                   "{\"city\": \"Z\xc3\xbcrich\", \"rooms\": [{\"beds\": 2, \"note\": \"\xe2\x9d\x84\"}], \"price\": 1.5}",
                   "Zz9Yy8Xx7");
        check_call(calls, 1, "get_time", "{}", NULL);
        CHECK(strcmp(mistral_tool_calls_content(calls), "Checking.") == 0, "content before the calls");
        CHECK(strstr(mistral_tool_calls_json(calls), "\"type\": \"function\"") != NULL, "OpenAI JSON");
    }
    mistral_tool_calls_free(calls);
    /* malformed JSON: a status and a message, no handle */
    const char *bad[] = {"[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {", "[TOOL_CALLS]oops", "[TOOL_CALLS][{\"arguments\": 1}]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        calls = (mistral_tool_calls *)1;
        CHECK(parse_tokens(model, bad[i], &calls) == MISTRAL_ERR_FORMAT && calls == NULL, "malformed %zu", i);
        CHECK(strlen(mistral_last_error()) > 0, "malformed %zu message", i);
    }
    /* no calls; bad arguments */
    CHECK(mistral_tool_calls_parse_text("plain", 5, &calls) == MISTRAL_OK && mistral_tool_calls_count(calls) == 0, "none");
    mistral_tool_calls_free(calls);
    CHECK(mistral_tool_calls_parse_text(NULL, 3, &calls) == MISTRAL_ERR_INVALID_ARGUMENT, "NULL text");
    CHECK(mistral_tool_calls_parse_text("\xff", 1, &calls) == MISTRAL_ERR_INVALID_ARGUMENT, "invalid UTF-8");
    CHECK(mistral_tool_calls_parse(NULL, NULL, 0, &calls) == MISTRAL_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(mistral_tool_calls_parse(model, NULL, (size_t)-1, &calls) == MISTRAL_ERR_INVALID_ARGUMENT, "size (size_t)-1");
    CHECK(mistral_tool_calls_parse_text("x", (size_t)-1, &calls) == MISTRAL_ERR_INVALID_ARGUMENT, "len (size_t)-1");
    CHECK(mistral_chat_tokenize_json(model, NULL, "{}", (size_t)-1, NULL, 0, 0, NULL, 0, &n_ids) == MISTRAL_ERR_INVALID_ARGUMENT,
          "request len (size_t)-1");
    CHECK(mistral_tool_calls_parse_text("x", 1, NULL) == MISTRAL_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(mistral_tool_calls_count(NULL) == 0 && mistral_tool_calls_json(NULL) == NULL, "NULL handle getters");
    mistral_tool_calls_free(NULL);
    if (failures == 0) printf("parse checks passed\n");
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s render TEKKEN_JSON TEMPLATE|- < cases | parse TEKKEN_JSON\n", argv[0]);
        return 2;
    }
    mistral_model_params params;
    mistral_model_params_init(&params);
    params.vocab_only = 1;
    mistral_model *model = NULL;
    if (mistral_model_load(argv[2], &params, &model) != MISTRAL_OK) {
        fprintf(stderr, "load %s: %s\n", argv[2], mistral_last_error());
        return 2;
    }
    int rc = 2;
    if (strcmp(argv[1], "render") == 0 && argc == 4) rc = render(model, strcmp(argv[3], "-") == 0 ? NULL : argv[3]);
    if (strcmp(argv[1], "parse") == 0) rc = parse(model);
    mistral_model_free(model);
    return rc;
}
