"""include/mistral.h is a clean public header: it compiles on its own as C99 and C11 with
-Wall -Wextra -Werror -pedantic, and as C++17 (with the same warnings), with gcc and, when present, clang."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = os.path.join(ROOT, "include")
WARN = ["-Wall", "-Wextra", "-Werror", "-pedantic"]

SOURCE = r"""
#include <mistral.h>
#include <mistral.h> /* include guard */

#if MISTRAL_VERSION_NUMBER != MISTRAL_VERSION_MAJOR * 10000 + MISTRAL_VERSION_MINOR * 100 + MISTRAL_VERSION_PATCH
#error "MISTRAL_VERSION_NUMBER is inconsistent"
#endif

static int on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)piece; (void)len; (void)token; (void)user_data;
    return 0;
}

static int on_progress(float fraction, void *user_data) {
    (void)user_data;
    return fraction > 2.0f;
}

static int on_info(const mistral_token_info *info, void *user_data) {
    (void)user_data;
    return info->n_top > 0 && info->top[0].logprob > 0.0f && info->text_len > 0;
}

int use_api(const char *path);
int use_api(const char *path) {
    mistral_model_params mp;
    mistral_session_params sp;
    mistral_generate_params gp;
    mistral_model *model = 0;
    mistral_session *session = 0;
    mistral_token_callback cb = on_piece;
    mistral_token_info_callback info_cb = on_info;
    const int32_t bias_tokens[1] = {0};
    const float bias_values[1] = {-1.0f};
    char grammar[256];
    size_t n_grammar = 0;
    mistral_model_params_init(&mp);
    mistral_session_params_init(&sp);
    mistral_generate_params_init(&gp);
    mp.progress_callback = on_progress;
    mp.progress_user_data = 0;
    {
        mistral_memory_estimate est;
        est.struct_size = sizeof est;
        if (mistral_model_estimate(path, &mp, &sp, &est) == MISTRAL_OK && est.total_bytes == 0) return -1;
    }
    gp.grammar = "root ::= [0-9]+";
    gp.json_schema = 0;
    gp.logit_bias_tokens = bias_tokens;
    gp.logit_bias_values = bias_values;
    gp.n_logit_bias = 1;
    gp.n_logprobs = 2;
    gp.flags |= MISTRAL_GENERATE_LOGPROBS;
    (void)mistral_json_schema_to_grammar("{}", grammar, sizeof grammar, &n_grammar);
    if (mistral_model_load(path, &mp, &model) != MISTRAL_OK) return (int)mistral_version_number();
    if (mistral_session_create(model, &sp, &session) == MISTRAL_OK)
        (void)mistral_generate(session, 0, 0, &gp, cb, 0);
    if (session) (void)mistral_generate_ex(session, 0, 0, &gp, info_cb, 0);
    mistral_session_free(session);
    mistral_model_free(model);
    return (int)sizeof(mp) + (int)sizeof(sp) + (int)sizeof(gp);
}
"""


def compilers():
    found = []
    for c, cxx in (("cc", "c++"), ("clang", "clang++")):
        if shutil.which(c) and shutil.which(cxx):
            found.append((c, cxx))
    return found


CASES = [(cc, "c", std) for cc, _ in compilers() for std in ("c99", "c11")] + \
        [(cxx, "c++", "c++17") for _, cxx in compilers()]


@pytest.mark.parametrize("compiler,lang,std", CASES, ids=[f"{c}-{s}" for c, _, s in CASES])
def test_header_compiles(tmp_path, compiler, lang, std):
    src = tmp_path / ("use.c" if lang == "c" else "use.cpp")
    src.write_text(SOURCE)
    cmd = [compiler, f"-std={std}", *WARN, "-I", INCLUDE, "-c", str(src), "-o", str(tmp_path / "use.o")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, " ".join(cmd) + "\n" + r.stderr
