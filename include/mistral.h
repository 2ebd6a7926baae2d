/*
 * mistral.h — public C API of libmistral, an inference engine for the Mistral Small 3.1 model family
 * (and the Llama-style decoders it shares its architecture with).
 *
 * Conventions
 * - Every object is an opaque handle created by a `*_create`/`*_load` call and released by the matching
 *   `*_free` call. Passing NULL to a `*_free` call is a no-op.
 * - Every fallible call returns a `mistral_status`; 0 (`MISTRAL_OK`) is success. After a failure,
 *   `mistral_last_error()` returns a message describing it, for the calling thread.
 * - Output buffers are supplied by the caller together with their capacity. When the capacity is too small the
 *   call returns `MISTRAL_ERR_BUFFER_TOO_SMALL` and still stores the needed count in the `n_*` out-parameter, so the
 *   caller can allocate and retry. Nothing the caller owns is freed or kept by the library.
 * - Params structs are passed by pointer and begin with `struct_size`. Fill them with the matching `*_init`
 *   function (which sets `struct_size` and the defaults), then change the fields you need. A struct from an older
 *   header (smaller `struct_size`) is accepted: the missing fields keep their defaults. A NULL params pointer means
 *   "all defaults".
 * - Text is UTF-8. Lengths are in bytes and never include a terminating NUL.
 * - Thread safety: a `mistral_model` is immutable after loading and may be used from any number of threads at
 *   once. A `mistral_session` serves one call at a time: a call that would change or run it (eval, generate,
 *   eval_chat, reset, truncate) while another call on the same session is running — from another thread, or
 *   re-entrantly from inside that call's own callback — is refused with MISTRAL_ERR_INVALID_ARGUMENT and the
 *   message "session is busy ..." (an atomic flag; nothing waits). Read-only getters (n_past, n_ctx,
 *   last_stop_reason, ...) are always allowed. Never free a session while a call on it is running.
 * - Hostile input: every number read from a file is range-checked where it is parsed (a value the C API cannot
 *   represent, e.g. a trained context >= 2^31, is MISTRAL_ERR_FORMAT), and allocations a file or a caller sizes
 *   (KV cache, vocabularies, images) are checked against the machine's memory first (MISTRAL_ERR_OUT_OF_MEMORY
 *   instead of a later kill by the kernel). docs/errors.md lists each bad-input class with its status.
 * - The library never writes to stdout or stderr; diagnostics go to the callback set with `mistral_log_set`.
 */
#ifndef MISTRAL_H
#define MISTRAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MISTRAL_API __attribute__((visibility("default")))
#else
#define MISTRAL_API
#endif

/* ---- Version -------------------------------------------------------------------------------------------- */

#define MISTRAL_VERSION_MAJOR 0 /* the SONAME is libmistral.so.<MAJOR> */
#define MISTRAL_VERSION_MINOR 4
#define MISTRAL_VERSION_PATCH 0
#define MISTRAL_VERSION_NUMBER (MISTRAL_VERSION_MAJOR * 10000 + MISTRAL_VERSION_MINOR * 100 + MISTRAL_VERSION_PATCH)
#define MISTRAL_VERSION_STRING "0.4.0"

/* The library's version as "MAJOR.MINOR.PATCH". Static storage; never free it. */
MISTRAL_API const char *mistral_version(void);
/* The library's MISTRAL_VERSION_NUMBER, to detect a header/library mismatch at run time. */
MISTRAL_API int32_t mistral_version_number(void);

/* ---- Status codes and errors ---------------------------------------------------------------------------- */

typedef int32_t mistral_status;
#define MISTRAL_OK 0
#define MISTRAL_ERR_INVALID_ARGUMENT 1  /* NULL pointer, out-of-range value, invalid UTF-8, bad struct_size */
#define MISTRAL_ERR_IO 2                /* a file could not be opened, read or mapped */
#define MISTRAL_ERR_FORMAT 3            /* a model file is malformed, truncated or inconsistent */
#define MISTRAL_ERR_UNSUPPORTED 4       /* well-formed, but uses a feature this version does not implement */
#define MISTRAL_ERR_OUT_OF_MEMORY 5     /* an allocation failed, a size would overflow, or it would not fit in the
                                           machine's physical / available memory */
#define MISTRAL_ERR_CONTEXT_FULL 6      /* the session's context (n_ctx positions) cannot hold more tokens */
#define MISTRAL_ERR_BUFFER_TOO_SMALL 7  /* an output buffer is too small; the needed count was stored */
#define MISTRAL_ERR_CANCELLED 8         /* the caller's callback asked to stop */
#define MISTRAL_ERR_INTERNAL 9          /* a bug in libmistral; please report it with mistral_last_error() */

/* Message for the last failed call on the calling thread ("" if none). Valid until the next failing call on
 * this thread; never free it. */
MISTRAL_API const char *mistral_last_error(void);
/* A constant name for a status code, e.g. "MISTRAL_ERR_FORMAT". Never NULL, never free it. */
MISTRAL_API const char *mistral_status_string(mistral_status status);

/* ---- Logging ---------------------------------------------------------------------------------------------- */

#define MISTRAL_LOG_ERROR 0
#define MISTRAL_LOG_WARN 1
#define MISTRAL_LOG_INFO 2
#define MISTRAL_LOG_DEBUG 3

/* Receives one NUL-terminated message (valid only during the call). May be called from any thread, and from
 * several threads at once. It may call any libmistral function except mistral_log_set (which would wait for the
 * callback itself to return: a deadlock); it should return quickly, since mistral_log_set waits for it. */
typedef void (*mistral_log_callback)(int32_t level, const char *message, void *user_data);
/* Routes the library's diagnostics to `callback` for messages at `level` or more severe. NULL disables logging
 * (the default). Process-wide; safe to call from any thread. When it returns, no thread is running the previous
 * callback any more and none will call it again, so the previous user_data may be freed. */
MISTRAL_API void mistral_log_set(mistral_log_callback callback, int32_t level, void *user_data);

/* ---- Model ------------------------------------------------------------------------------------------------ */

typedef struct mistral_model mistral_model;

#define MISTRAL_WEIGHTS_AS_STORED 0 /* use the file's weight types as they are */
#define MISTRAL_WEIGHTS_Q8_0 8      /* re-quantize float (F32/F16/BF16) matrices to Q8_0 while loading */
#define MISTRAL_WEIGHTS_Q4_0 2      /* ... to Q4_0 */

/* (since 0.3) Told how far a load is: `fraction` in [0, 1], 0 on the first call and 1 on the last, increasing in
 * between, measured over the load's slow work (re-quantizing float matrices for weight_type, reading a GGUF file
 * into memory). Called on the loading thread, a few hundred times at most. Return 0 to go on, nonzero to cancel:
 * mistral_model_load then returns MISTRAL_ERR_CANCELLED, frees everything it allocated and sets *out_model to NULL. */
typedef int (*mistral_progress_callback)(float fraction, void *user_data);

typedef struct mistral_model_params {
    size_t struct_size;         /* sizeof(mistral_model_params), set by mistral_model_params_init */
    int32_t vocab_only;         /* nonzero: load only the tokenizer (no weights); sessions then fail. Default 0 */
    int32_t weight_type;        /* MISTRAL_WEIGHTS_*. Default MISTRAL_WEIGHTS_AS_STORED */
    const char *tokenizer_path; /* a tekken.json to use instead of the model's own tokenizer; NULL = default.
                                   Copied during the call. */
    const char *mmproj_path;    /* (since 0.2) llama.cpp's mmproj GGUF with the vision encoder of a GGUF text model;
                                   NULL = none. HF and native folders bring their own vision weights. */
    mistral_progress_callback progress_callback; /* (since 0.3) load progress, may cancel; NULL = none */
    void *progress_user_data;                    /* (since 0.3) passed to progress_callback */
    int32_t n_threads;          /* (since 0.4) threads of the worker pool every session of this model shares (the
                                   process's thread budget for it); 0 = the machine's physical cores. Default 0 */
    int32_t max_batch_sessions; /* (since 0.4) at most this many sessions' concurrent steps are evaluated as one
                                   batch (see "Batching" below); 1 = no batching, concurrent sessions take turns on
                                   the pool. 1...256, default 16 */
    int32_t vision_compute;     /* (since 0.4) MISTRAL_VISION_COMPUTE_*: how the vision encoder's matmuls compute.
                                   Default MISTRAL_VISION_COMPUTE_DEFAULT */
} mistral_model_params;

/* mistral_model_params.vision_compute. F32: f32 products against the weights (the vision encoder matches
 * transformers to ~1e-5). BF16: activations rounded to bf16 and AVX-512 BF16 vdpbf16ps where the CPU has it (about
 * twice as fast; every output within 2^-8 * sum|x*w| of F32; CPUs without it compute as F32). DEFAULT: F32 unless
 * the environment variable MISTRAL_VISION_COMPUTE=bf16 says otherwise. */
#define MISTRAL_VISION_COMPUTE_DEFAULT 0
#define MISTRAL_VISION_COMPUTE_F32 1
#define MISTRAL_VISION_COMPUTE_BF16 2

MISTRAL_API void mistral_model_params_init(mistral_model_params *params);

/* Loads a model: a GGUF file (arch llama/mistral/mistral3), a Hugging Face folder (config.json + model.safetensors or
 * sharded model-*.safetensors with model.safetensors.index.json, tekken.json), Mistral's native folder (params.json +
 * consolidated.safetensors + tekken.json), or a lone tekken.json (tokenizer only). Weights are memory-mapped, not
 * copied, unless params->weight_type asks for a conversion. On success stores a new handle in *out_model,
 * to be released with mistral_model_free. On failure *out_model is set to NULL. */
MISTRAL_API mistral_status mistral_model_load(const char *path, const mistral_model_params *params,
                                              mistral_model **out_model);
/* Releases a model. Every session created from it must have been freed first. NULL is a no-op. */
MISTRAL_API void mistral_model_free(mistral_model *model);


/* Model information. These return 0 (or -1 for token ids, NULL for strings) when `model` is NULL. */
MISTRAL_API int32_t mistral_model_n_vocab(const mistral_model *model);
MISTRAL_API int32_t mistral_model_n_ctx_train(const mistral_model *model); /* context length trained for */
MISTRAL_API int32_t mistral_model_n_embd(const mistral_model *model);
MISTRAL_API int32_t mistral_model_n_layer(const mistral_model *model);
MISTRAL_API int32_t mistral_model_token_bos(const mistral_model *model);   /* -1 when the model has none */
MISTRAL_API int32_t mistral_model_token_eos(const mistral_model *model);   /* -1 when the model has none */
/* Nonzero when the model's tokenizer expects a BOS token at the start of a text (GGUF add_bos_token). */
MISTRAL_API int32_t mistral_model_add_bos(const mistral_model *model);
/* Nonzero when `token` ends a turn or the text (EOS, <|im_end|>, ...). */
MISTRAL_API int32_t mistral_model_token_is_eog(const mistral_model *model, int32_t token);
/* GGUF architecture name, e.g. "llama". Owned by the model, valid until mistral_model_free. */
MISTRAL_API const char *mistral_model_arch(const mistral_model *model);
/* Human-readable description, e.g. "llama 30 layers, 576 embd, 49152 vocab". Owned by the model. */
MISTRAL_API const char *mistral_model_desc(const mistral_model *model);

/* (since 0.4) Batching. All sessions of a model run their forward passes on the model's one worker pool
 * (mistral_model_params.n_threads threads; a session's n_threads is at most that many of them). When several
 * threads call eval/generate on DIFFERENT sessions of one model at the same time, their steps are evaluated
 * together as one batch: each weight matrix is read once per step for all of them, so N concurrent decodes cost
 * little more than one (decode is memory-bound on a CPU). A long prompt is cut into pieces while others decode, so
 * it does not stall them. Batching is automatic and changes no result: each session gets exactly the tokens
 * (greedy or seeded sampling) and logits it would get alone. A lone session pays nothing for it. */

/* (since 0.4) Threads of the model's shared worker pool; 0 when `model` is NULL or vocab-only. */
MISTRAL_API int32_t mistral_model_n_threads(const mistral_model *model);

/* (since 0.4) How much batching a model's sessions got, counted since load or the last reset. */
typedef struct mistral_batch_stats {
    size_t struct_size;     /* set by the caller to sizeof(mistral_batch_stats); fields past it are not written */
    uint64_t steps;         /* forward steps run */
    uint64_t batched_steps; /* steps that evaluated more than one session */
    uint64_t max_sessions;  /* the most sessions one step evaluated */
    uint64_t max_rows;      /* the most positions one step evaluated */
    uint64_t rows;          /* positions evaluated in all steps */
    uint64_t busy_ns;       /* nanoseconds spent in forward steps (the pool was idle the rest of the time) */
} mistral_batch_stats;

/* (since 0.4) Fills *out (MISTRAL_ERR_INVALID_ARGUMENT for a NULL or vocab-only model, NULL out or a bad
 * struct_size); with `reset` nonzero, then sets the counters back to zero. */
MISTRAL_API mistral_status mistral_model_batch_stats(mistral_model *model, mistral_batch_stats *out, int32_t reset);

/* ---- Tokenizer -------------------------------------------------------------------------------------------- */

#define MISTRAL_TOKENIZE_ADD_BOS 1u       /* prepend the model's BOS token */
#define MISTRAL_TOKENIZE_PARSE_SPECIAL 2u /* text like "<|im_start|>" becomes control tokens (else plain text) */

/* Tokenizes `len` bytes of UTF-8 `text` (need not be NUL-terminated; may be NULL when len is 0).
 * Writes up to `capacity` ids to `tokens` and the total count to *n_tokens.
 * Returns MISTRAL_ERR_BUFFER_TOO_SMALL (with *n_tokens = needed count) when capacity is short, and
 * MISTRAL_ERR_INVALID_ARGUMENT for invalid UTF-8. */
MISTRAL_API mistral_status mistral_tokenize(const mistral_model *model, const char *text, size_t len,
                                            uint32_t flags, int32_t *tokens, size_t capacity, size_t *n_tokens);

#define MISTRAL_DETOKENIZE_SPECIAL 1u /* render control tokens as their text (else they produce no bytes) */

/* Converts ids back to bytes. Writes up to `capacity` bytes to `text` and the total byte count to *n_bytes; a NUL
 * is appended when there is room for it (not counted). The bytes are UTF-8 unless the ids split a character.
 * Returns MISTRAL_ERR_BUFFER_TOO_SMALL (with *n_bytes = needed) when capacity is short; MISTRAL_ERR_INVALID_ARGUMENT
 * for an id outside the vocabulary. */
MISTRAL_API mistral_status mistral_detokenize(const mistral_model *model, const int32_t *tokens, size_t n_tokens,
                                              uint32_t flags, char *text, size_t capacity, size_t *n_bytes);
/* The bytes of one token (same rules as mistral_detokenize). */
MISTRAL_API mistral_status mistral_token_to_piece(const mistral_model *model, int32_t token, uint32_t flags,
                                                  char *text, size_t capacity, size_t *n_bytes);

/* ---- Images (since 0.2) ---------------------------------------------------------------------------------- */

/* A decoded image: packed RGB8 pixels, row-major, no padding. Immutable; may be shared between threads. */
typedef struct mistral_image mistral_image;

#define MISTRAL_IMAGE_MAX_SIDE 16384       /* larger images are refused with MISTRAL_ERR_INVALID_ARGUMENT */
#define MISTRAL_IMAGE_MAX_PIXELS 100000000

/* Decodes a PNG or JPEG file (alpha is composited onto white, grayscale/CMYK become RGB). Corrupt or truncated files
 * give MISTRAL_ERR_FORMAT, unreadable ones MISTRAL_ERR_IO, absurd dimensions MISTRAL_ERR_INVALID_ARGUMENT, pixels
 * that would not fit in memory MISTRAL_ERR_OUT_OF_MEMORY. A JPEG that libjpeg can decode only with a warning (data
 * truncated — even when the file still ends in an EOI marker — or corrupt entropy data) is MISTRAL_ERR_FORMAT.
 * Decode-time budget: decoding costs about pixels x scans (a progressive JPEG re-reads its coefficients once per
 * scan; PNG and baseline JPEG have one pass). A JPEG whose width x height x scan count exceeds 2^31 pixel-scans
 * (e.g. 100 megapixels with more than 21 scans), or that has more than 500 scans, is refused with
 * MISTRAL_ERR_FORMAT before or while decoding; a repeated or out-of-order scan is refused at once. Measured on one
 * x86-64 core with noise images (the costliest entropy data): ~40 ms per megapixel baseline, ~60 ms per megapixel
 * for 10 progressive scans, i.e. ~6 ns per pixel-scan, so no accepted input decodes for more than about 15-30 s,
 * and an ordinary 12-megapixel photo takes well under a second. */
MISTRAL_API mistral_status mistral_image_load_file(const char *path, mistral_image **out_image);
/* The same from `len` bytes of an encoded PNG/JPEG in memory (copied; the caller keeps its buffer). */
MISTRAL_API mistral_status mistral_image_load_memory(const void *data, size_t len, mistral_image **out_image);
/* Wraps a copy of packed RGB8 pixels (width * height * 3 bytes). */
MISTRAL_API mistral_status mistral_image_from_rgb(const uint8_t *rgb, uint32_t width, uint32_t height,
                                                  mistral_image **out_image);
/* NULL is a no-op. */
MISTRAL_API void mistral_image_free(mistral_image *image);
MISTRAL_API uint32_t mistral_image_width(const mistral_image *image);   /* 0 for NULL */
MISTRAL_API uint32_t mistral_image_height(const mistral_image *image);  /* 0 for NULL */
/* The pixels (width * height * 3 bytes), owned by the image. NULL for NULL. */
MISTRAL_API const uint8_t *mistral_image_rgb(const mistral_image *image);

/* Nonzero when the model has a vision encoder (image calls need one). */
MISTRAL_API int32_t mistral_model_has_vision(const mistral_model *model);
/* The [IMG] token grid an image of width x height becomes after mistral-common's resizing: `rows` lines of
 * `cols` [IMG] tokens (each line but the last followed by [IMG_BREAK], the last by [IMG_END]). */
MISTRAL_API mistral_status mistral_image_token_grid(const mistral_model *model, uint32_t width, uint32_t height,
                                                    uint32_t *rows, uint32_t *cols);
/* Encodes packed RGB8 pixels into embedding rows: n_rows = rows * cols (one per [IMG] token, in prompt order),
 * n_embd floats each, written to `out` when `capacity` (in rows) suffices; otherwise MISTRAL_ERR_BUFFER_TOO_SMALL
 * with *n_rows = the needed count. Thread-safe (uses its own scratch). */
MISTRAL_API mistral_status mistral_image_embed(const mistral_model *model, const uint8_t *rgb, uint32_t width,
                                               uint32_t height, float *out, size_t capacity, size_t *n_rows);

/* ---- Chat ---------------------------------------------------------------------------------------------- */

typedef struct mistral_chat_message {
    const char *role;              /* "system", "user" or "assistant" */
    const char *content;           /* UTF-8 text; rendered as plain text (control-token texts in it stay text) */
    const mistral_image *const *images; /* user messages only: images shown before the text, in order (V7) */
    size_t n_images;
} mistral_chat_message;

#define MISTRAL_CHAT_ADD_GENERATION_PROMPT 1u /* end with what starts the assistant's reply */

/* The model's chat template: "mistral-v7" (Mistral Small 3.1: v7 Tekken files and V7 GGUF templates), "mistral-v3"
 * (since 0.3; v3 Tekken files as shipped for Mistral NeMo and Pixtral 12B, tekken_240718.json and tekken_240911.json,
 * chosen by the file's config.version as mistral-common does) or "chatml", or NULL when its GGUF template is not
 * recognised. Static storage. */
MISTRAL_API const char *mistral_model_chat_template(const mistral_model *model);

/* Renders a conversation to token ids with `template_name` ("mistral-v7", "mistral-v3", "chatml") or, when NULL, the
 * model's own template, exactly as mistral-common renders V7 / V3. No tools: see mistral_chat_tokenize_json. Buffer rules as mistral_tokenize. Returns MISTRAL_ERR_UNSUPPORTED
 * when the model's template is not recognised (render the prompt yourself and use mistral_tokenize with
 * MISTRAL_TOKENIZE_PARSE_SPECIAL, or pass a template name), MISTRAL_ERR_INVALID_ARGUMENT for an invalid
 * conversation (unknown role, bad order, invalid UTF-8). */
MISTRAL_API mistral_status mistral_chat_tokenize(const mistral_model *model, const char *template_name,
                                                 const mistral_chat_message *messages, size_t n_messages,
                                                 uint32_t flags, int32_t *tokens, size_t capacity,
                                                 size_t *n_tokens);

/* ---- Chat requests as JSON: tools, tool calls, tool results (since 0.3) ---------------------------------------
 *
 * Why JSON: mistral_chat_message has no struct_size and is passed as an array, so it cannot grow. Rather than a
 * second struct family (message, tool call, tool, each with its own struct_size and lifetime rules), the request
 * is the OpenAI chat-completion JSON that callers already build for every other server: new fields (content
 * parts, response formats) can be read later without any ABI change, and a binding needs only json.dumps. Images,
 * which JSON cannot carry cheaply, are passed as handles beside it.
 *
 * `request_json` (`len` bytes of UTF-8): {"messages": [...], "tools": [...]}; other top-level keys are ignored.
 *   - message: {"role": "system"|"user"|"assistant"|"tool", "content": string | null | [parts]}
 *     parts: {"type": "text", "text": "..."} and {"type": "image"} (takes the next of `images`, in order; all
 *     `n_images` must be used; a message's images are rendered before its text).
 *   - assistant calls: "tool_calls": [{"id": "9 alphanumerics", "type": "function",
 *     "function": {"name": "...", "arguments": "JSON text" (or an object)}}]
 *   - tool results: {"role": "tool", "tool_call_id": "...", "name": "..." (optional), "content": "..."}
 *   - tools: [{"type": "function", "function": {"name", "description", "parameters": JSON schema}}]
 * The V7 and V3 templates render this exactly as mistral-common 1.13.1 does (validation, merging, the tool list
 * before the last user message, tool JSON written as Python's json.dumps writes it); all text, tool schemas and
 * tool results included, is tokenized as plain text. A bad request (invalid JSON, a wrong type, an unknown role, a
 * call id that is not 9 alphanumerics, tool results that do not match the calls, ...) is
 * MISTRAL_ERR_INVALID_ARGUMENT with a message naming the field; tools with the "chatml" template, or v11+ Tekken
 * files, MISTRAL_ERR_UNSUPPORTED. Flags and buffer rules as mistral_chat_tokenize. */
MISTRAL_API mistral_status mistral_chat_tokenize_json(const mistral_model *model, const char *template_name,
                                                      const char *request_json, size_t len,
                                                      const mistral_image *const *images, size_t n_images,
                                                      uint32_t flags, int32_t *tokens, size_t capacity,
                                                      size_t *n_tokens);

/* ---- Session (KV cache + sampler state) ---------------------------------------------------------------- */

typedef struct mistral_session mistral_session;

typedef struct mistral_session_params {
    size_t struct_size; /* sizeof(mistral_session_params), set by mistral_session_params_init */
    uint32_t n_ctx;     /* positions the KV cache holds; 0 = min(model's trained context, 4096). Default 0 */
    int32_t n_threads;  /* worker threads for the forward pass, at most the model's pool (mistral_model_n_threads):
                           0 = all of them. Default 0 (before 0.4 each session had its own pool of online CPUs) */
    uint64_t seed;      /* seed of the session's sampling RNG. Default 0xC0FFEE */
    uint32_t n_batch;   /* tokens evaluated per forward chunk during prompt processing. Default 512 */
    int32_t kv_type;    /* how the KV cache stores keys/values: MISTRAL_KV_F16 (default), MISTRAL_KV_F32, MISTRAL_KV_Q8_0 */
} mistral_session_params;

#define MISTRAL_KV_F16 0 /* 2 bytes per value: 2 * n_layer * n_kv_head * head_dim * 2 bytes per position */
#define MISTRAL_KV_F32 1 /* 4 bytes per value, for comparing against float references */
#define MISTRAL_KV_Q8_0 2 /* blocks of 32 int8 + an f16 scale: 34 bytes per 32 values, for long contexts; needs a
                             head_dim that is a multiple of 32 (else mistral_session_create fails with
                             MISTRAL_ERR_INVALID_ARGUMENT) */

MISTRAL_API void mistral_session_params_init(mistral_session_params *params);

/* ---- Memory estimate (since 0.3) ------------------------------------------------------------------------- */

/* (since 0.3) Memory a model and one session on it will need, in bytes, computed from the files' headers and
 * metadata before anything is loaded (mistral_model_estimate reads no weights). The caller sets struct_size to
 * sizeof(mistral_memory_estimate); fields past a smaller struct_size are not written. */
typedef struct mistral_memory_estimate {
    size_t struct_size;
    uint64_t weights_bytes;         /* decoder weights resident once loaded: used in place from the mapping (a GGUF
                                       file is read whole), plus the copies weight_type converts */
    uint64_t kv_bytes_per_position; /* keys + values of one position, every layer, in session_params->kv_type:
                                       2 * n_layer * n_kv_head * head_dim * (2 for f16, 4 for f32, 34/32 for
                                       q8_0) */
    uint64_t n_ctx;                 /* the context the session would get (n_ctx 0 resolved as session_create does) */
    uint64_t kv_bytes;              /* kv_bytes_per_position * n_ctx, touched as the context fills */
    uint64_t scratch_bytes;         /* activations of one n_batch chunk, logits, per-thread attention scratch */
    uint64_t other_bytes;           /* the tokenizer's tables and the vision encoder's weights */
    uint64_t total_bytes;           /* the sum: the peak resident memory with a full context (not counting the
                                       library's own code and runtime, a few MB per process) */
} mistral_memory_estimate;

/* (since 0.3) Fills *out for loading `path` with `model_params` (weight_type, tokenizer_path, mmproj_path,
 * vocab_only; NULL = defaults) and creating a session with `session_params` (n_ctx, n_batch, n_threads, kv_type;
 * NULL = defaults). Errors as mistral_model_load for unreadable or malformed files. */
MISTRAL_API mistral_status mistral_model_estimate(const char *path, const mistral_model_params *model_params,
                                                  const mistral_session_params *session_params,
                                                  mistral_memory_estimate *out);

/* Creates a session on `model` (which must outlive it). Stores the handle in *out_session (NULL on failure).
 * MISTRAL_ERR_OUT_OF_MEMORY when the KV cache and activations for n_ctx positions would not fit in the machine's
 * physical or currently available memory (checked before anything is allocated). */
MISTRAL_API mistral_status mistral_session_create(const mistral_model *model, const mistral_session_params *params,
                                                  mistral_session **out_session);
/* Releases a session (its KV cache; the worker threads are the model's). NULL is a no-op. Must not be called while a call on the session is
 * running (e.g. from inside its token callback). */
MISTRAL_API void mistral_session_free(mistral_session *session);
/* Forgets every position (empties the KV cache) and reseeds the sampler with the session's seed. */
MISTRAL_API mistral_status mistral_session_reset(mistral_session *session);
/* Drops positions from `n_keep` on (n_keep <= n_past), so a conversation can be rewound. */
MISTRAL_API mistral_status mistral_session_truncate(mistral_session *session, uint32_t n_keep);
/* Positions in use / capacity. 0 when session is NULL. */
MISTRAL_API uint32_t mistral_session_n_past(const mistral_session *session);
MISTRAL_API uint32_t mistral_session_n_ctx(const mistral_session *session);

/* Appends `n_tokens` tokens to the session's context and runs the model over them.
 * When `logits_out` is not NULL it receives n_tokens x n_vocab floats, row i holding the next-token logits after
 * token i. Returns MISTRAL_ERR_CONTEXT_FULL (and appends nothing) when n_past + n_tokens > n_ctx. */
MISTRAL_API mistral_status mistral_eval(mistral_session *session, const int32_t *tokens, size_t n_tokens,
                                        float *logits_out);

/* (since 0.2) Appends `n_rows` positions given as embedding rows (n_embd floats each), e.g. rows from
 * mistral_image_embed for a prompt's [IMG] tokens, as mistral_eval does for tokens (logits_out: n_rows x n_vocab). */
MISTRAL_API mistral_status mistral_eval_embd(mistral_session *session, const float *embd, size_t n_rows,
                                             float *logits_out);

/* (since 0.2) Renders `messages` (images included) with `template_name` or the model's template and the generation
 * prompt, encodes the images, and brings the session to exactly that context: positions it already holds (same
 * tokens, same images) are kept, the rest is evaluated. Follow with mistral_generate(session, NULL, 0, ...) for the
 * answer; the next turn passes the whole conversation again and only its new part is computed. */
MISTRAL_API mistral_status mistral_session_eval_chat(mistral_session *session, const char *template_name,
                                                     const mistral_chat_message *messages, size_t n_messages);
/* (since 0.3) The same for a JSON request with tools (see mistral_chat_tokenize_json). After mistral_generate,
 * mistral_session_last_tool_calls returns the calls the model made. */
MISTRAL_API mistral_status mistral_session_eval_chat_json(mistral_session *session, const char *template_name,
                                                          const char *request_json, size_t len,
                                                          const mistral_image *const *images, size_t n_images);

/* ---- Generation ------------------------------------------------------------------------------------------ */

/* Receives each new piece of text: `len` bytes of complete UTF-8 (bytes of a character split across tokens are
 * held back until it is complete), not NUL-terminated, valid only during the call, and the id of the token that
 * completed it (-1 for text flushed at the end). Return 0 to continue, nonzero to stop generation. */
typedef int (*mistral_token_callback)(const char *piece, size_t len, int32_t token, void *user_data);

#define MISTRAL_GENERATE_IGNORE_EOS 1u  /* never stop at end-of-generation tokens (they are banned) */
#define MISTRAL_GENERATE_SPECIAL 2u     /* pass control tokens' text to the callback (else they give no text) */
#define MISTRAL_GENERATE_REUSE_PREFIX 4u /* `prompt` is the whole context from position 0: the session keeps the
                                            longest prefix it already holds and evaluates only the rest */
#define MISTRAL_GENERATE_LOGPROBS 8u    /* (since 0.3) report each token's log-probability to mistral_generate_ex */
#define MISTRAL_GENERATE_CONTEXT_SHIFT 16u /* (since 0.4) a full context during generation does not stop it: the first
                                              n_keep positions are kept, the n_discard after them are dropped and the
                                              rest moved down (see mistral_session_shift), and generation goes on */

typedef struct mistral_generate_params {
    size_t struct_size;     /* sizeof(mistral_generate_params), set by mistral_generate_params_init */
    int32_t max_tokens;     /* most tokens to generate; <= 0 means until EOS or a full context. Default 256 */
    float temperature;      /* 0 = greedy (argmax). Default 0.8 */
    int32_t top_k;          /* keep the k most likely tokens; 0 = off. Default 40 */
    float top_p;            /* nucleus: keep the smallest set with probability >= top_p; 1 = off. Default 0.95 */
    float min_p;            /* drop tokens with p < min_p * p_max; 0 = off. Default 0.05 */
    float repeat_penalty;   /* divide positive logits (multiply negative ones) of recent tokens; 1 = off. Default 1 */
    int32_t repeat_last_n;  /* how many recent tokens the penalty looks at. Default 64 */
    uint64_t seed;          /* 0: continue the session's RNG; else reseed it with this value first. Default 0 */
    const char *const *stop;/* `n_stop` NUL-terminated stop strings; generation ends before the first match. */
    size_t n_stop;
    uint32_t flags;         /* MISTRAL_GENERATE_* */
    /* (since 0.3) Constrained decoding. Each step, tokens that cannot continue the text inside the grammar get
     * probability 0, and end-of-generation is allowed only once the text is a complete sentence of it. At most
     * one of the two may be set; both are read (and compiled) during the call. A malformed grammar or schema is
     * MISTRAL_ERR_INVALID_ARGUMENT with a message naming the place. */
    const char *grammar;     /* GBNF text in llama.cpp's syntax (start rule `root`); NULL = none. Default NULL */
    const char *json_schema; /* a JSON schema (JSON text), converted to a grammar as llama.cpp's
                                json_schema_to_grammar does; "{\"type\": \"object\"}" = any JSON object. Default NULL */
    /* (since 0.3) Logit bias: logit_bias_values[i] is added to the raw logit of logit_bias_tokens[i] before
     * sampling; -INFINITY bans the token. Both arrays hold n_logit_bias entries (NULL when 0). */
    const int32_t *logit_bias_tokens;
    const float *logit_bias_values;
    size_t n_logit_bias;
    /* (since 0.3) Alternatives per token reported to mistral_generate_ex's callback (0...256); > 0 implies
     * MISTRAL_GENERATE_LOGPROBS. mistral_generate ignores it. Default 0 */
    int32_t n_logprobs;
    /* (since 0.4) With MISTRAL_GENERATE_CONTEXT_SHIFT: positions always kept at the start (e.g. the system prompt's
     * token count), and positions dropped after them each time the context is full (0 = half of the rest, as
     * llama.cpp). Both >= 0. Default 0 and 0 */
    int32_t n_keep;
    int32_t n_discard;
} mistral_generate_params;

MISTRAL_API void mistral_generate_params_init(mistral_generate_params *params);

#define MISTRAL_STOP_NONE 0
#define MISTRAL_STOP_EOG 1          /* the model produced an end-of-generation token (not passed on) */
#define MISTRAL_STOP_MAX_TOKENS 2
#define MISTRAL_STOP_STRING 3       /* a stop string matched; neither it nor what follows was passed on */
#define MISTRAL_STOP_CALLBACK 4     /* the callback returned nonzero */
#define MISTRAL_STOP_CONTEXT_FULL 5

/* Evaluates `prompt` (appended to the session, may be empty to continue) and then samples tokens, appending each
 * to the session and passing its text to `callback` (may be NULL), until end-of-generation, max_tokens, a stop
 * string, a full context, or the callback returning nonzero. Because tokens are appended, the next chat turn
 * only needs its own new tokens. Returns MISTRAL_OK for EOG/max_tokens/stop string, MISTRAL_ERR_CANCELLED when the
 * callback stopped it, and MISTRAL_ERR_CONTEXT_FULL when the context filled up (the text so far was delivered).
 * The stop reason and token count are available afterwards from mistral_session_last_stop_reason and
 * mistral_session_last_n_generated. */
MISTRAL_API mistral_status mistral_generate(mistral_session *session, const int32_t *prompt, size_t n_prompt,
                                            const mistral_generate_params *params, mistral_token_callback callback,
                                            void *user_data);
/* (since 0.3) One alternative in a token's log-probabilities. */
typedef struct mistral_token_logprob {
    int32_t token;
    float logprob;
} mistral_token_logprob;

/* (since 0.3) What mistral_generate_ex reports for each sampled token. Valid only during the callback. The library
 * may append fields in later versions: read only fields that lie below `struct_size`. */
typedef struct mistral_token_info {
    size_t struct_size;  /* sizeof(mistral_token_info) as the library fills it */
    int32_t token;       /* the sampled token; -1 for text flushed when generation ends */
    float logprob;       /* log_softmax of the model's raw logits at `token` (before logit bias, repetition penalty,
                            grammar mask and temperature: what mistral_eval returns); NAN when logprobs are off
                            and for token -1 */
    const char *text;    /* complete UTF-8 this token released (may be empty while a split character or a possible
                            stop string is held back), not NUL-terminated */
    size_t text_len;
    const mistral_token_logprob *top; /* the n_top most likely tokens of that distribution, most likely first */
    size_t n_top;
} mistral_token_info;

/* Receives one mistral_token_info per sampled token (also those with no text yet). Return 0 to continue, nonzero to
 * stop generation. */
typedef int (*mistral_token_info_callback)(const mistral_token_info *info, void *user_data);

/* (since 0.3) mistral_generate with a per-token callback that also receives log-probabilities (flag
 * MISTRAL_GENERATE_LOGPROBS or n_logprobs > 0). Same statuses and stop reasons as mistral_generate. */
MISTRAL_API mistral_status mistral_generate_ex(mistral_session *session, const int32_t *prompt, size_t n_prompt,
                                               const mistral_generate_params *params,
                                               mistral_token_info_callback callback, void *user_data);

/* (since 0.3) The GBNF grammar a JSON schema becomes (what the json_schema field uses), NUL-terminated, for
 * inspection or editing. Buffer rules as mistral_detokenize. MISTRAL_ERR_INVALID_ARGUMENT for invalid JSON or an
 * unsupported schema (`pattern`, `allOf`, remote $ref). */
MISTRAL_API mistral_status mistral_json_schema_to_grammar(const char *json_schema, char *grammar, size_t capacity,
                                                          size_t *n_bytes);

/* MISTRAL_STOP_* for the last mistral_generate call on this session. */
MISTRAL_API int32_t mistral_session_last_stop_reason(const mistral_session *session);
/* Tokens sampled by the last mistral_generate call (the EOG token, when one ended it, is not counted). */
MISTRAL_API uint32_t mistral_session_last_n_generated(const mistral_session *session);

/* ---- Prompt cache, saved sessions, context shift (since 0.4) ----------------------------------------------
 * These calls take the session(s) like eval does: refused as busy while another call on one of them runs. */

/* Makes `dst`'s context the first `n_positions` positions of `src` (tokens, image row identities and the KV cache
 * of every layer), copied instead of recomputed: e.g. a shared system prompt evaluated once. The sessions must
 * be on the same weights (the same model, or another load of the same file: the model fingerprint is compared;
 * MISTRAL_ERR_INVALID_ARGUMENT otherwise) and distinct; their KV types may differ (rows are converted). n_positions
 * <= src's n_past (else MISTRAL_ERR_INVALID_ARGUMENT) and <= dst's n_ctx (else MISTRAL_ERR_CONTEXT_FULL). The
 * next-token logits come along only when n_positions is all of src's; otherwise evaluate at least one more token
 * before generating (MISTRAL_GENERATE_REUSE_PREFIX with the full prompt does this by itself). dst keeps its own
 * RNG and seed. */
MISTRAL_API mistral_status mistral_session_copy_prefix(mistral_session *dst, const mistral_session *src,
                                                       uint32_t n_positions);
/* Stores in *n_common how many leading tokens of `tokens` the session already holds (image positions never match),
 * e.g. to pick the session of a pool that shares the longest prefix with a request. */
MISTRAL_API mistral_status mistral_session_common_prefix(const mistral_session *session, const int32_t *tokens,
                                                         size_t n_tokens, size_t *n_common);
/* The token ids of the session's context (n_past of them; image positions hold the [IMG] id or -1). Buffer rules as
 * mistral_tokenize. */
MISTRAL_API mistral_status mistral_session_tokens(const mistral_session *session, int32_t *tokens, size_t capacity,
                                                  size_t *n_tokens);

/* Saves the session — its tokens, the KV cache of the used positions (in the session's KV type), the next-token
 * logits when valid and the sampling RNG's state — to a file (replaced; removed again if writing fails), in a
 * versioned binary format with the model's fingerprint and a checksum (format: SessionState.swift). A session
 * loaded from it continues exactly as this one would: the same tokens with greedy or seeded sampling, including
 * an RNG that was never reseeded (seed 0 continues it). Not saved: the session's own seed (used by reset), n_ctx,
 * n_batch and the last call's stop reason. MISTRAL_ERR_IO when the file cannot be written. */
MISTRAL_API mistral_status mistral_session_save_file(mistral_session *session, const char *path);
/* Replaces the session's state with a saved one. Refused, with the session unchanged: a file from another model
 * (fingerprint: config, tensor shapes/types and sampled weight values) MISTRAL_ERR_INVALID_ARGUMENT; more saved
 * positions than this session's n_ctx MISTRAL_ERR_CONTEXT_FULL; a newer format MISTRAL_ERR_UNSUPPORTED; a truncated,
 * corrupt (checksum) or inconsistent file MISTRAL_ERR_FORMAT; an unreadable one MISTRAL_ERR_IO. The saved KV type
 * may differ from the session's (rows are converted). */
MISTRAL_API mistral_status mistral_session_load_file(mistral_session *session, const char *path);
/* The same into a caller's buffer: *n_bytes = the size needed (query with capacity 0; buffer may then be NULL);
 * MISTRAL_ERR_BUFFER_TOO_SMALL when capacity is short. */
MISTRAL_API mistral_status mistral_session_save_memory(mistral_session *session, void *buffer, size_t capacity,
                                                       size_t *n_bytes);
/* ... and from `len` bytes in memory (not kept). Same refusals as mistral_session_load_file. */
MISTRAL_API mistral_status mistral_session_load_memory(mistral_session *session, const void *data, size_t len);

/* Context shift: drops positions n_keep..<n_keep+n_discard and moves the later ones down, as llama.cpp's context
 * shift does: their keys are re-rotated to the new positions (RoPE is a rotation: each key pair is turned by the
 * angle difference), not recomputed. Exact up to rounding with an f32 cache; f16 and q8_0 caches round the moved
 * keys once more. The kept positions still carry what they computed while the dropped ones were visible, so the
 * model continues as llama.cpp's does rather than as if the dropped text had never been there. Next-token logits,
 * when valid, stay those of the last position. n_keep + n_discard <= n_past (else MISTRAL_ERR_INVALID_ARGUMENT). */
MISTRAL_API mistral_status mistral_session_shift(mistral_session *session, uint32_t n_keep, uint32_t n_discard);

/* ---- Tool calls in the output (since 0.3) --------------------------------------------------------------------
 * A model that calls tools writes the [TOOL_CALLS] control token and a JSON list of {"name", "arguments", "id"?}.
 * A parse result holds each call's name, its arguments as JSON text (re-serialized as json.dumps writes it) and
 * its id (9 random alphanumerics when the model wrote none), plus the text before [TOOL_CALLS]. Malformed call JSON
 * gives MISTRAL_ERR_FORMAT (and *out_calls = NULL) with a message; text without [TOOL_CALLS] gives 0 calls. */
typedef struct mistral_tool_calls mistral_tool_calls;

/* Parses generated token ids (the [TOOL_CALLS] token, not text spelling it, starts the calls). */
MISTRAL_API mistral_status mistral_tool_calls_parse(const mistral_model *model, const int32_t *tokens,
                                                    size_t n_tokens, mistral_tool_calls **out_calls);
/* Parses text in which the literal "[TOOL_CALLS]" starts the calls (e.g. generated with MISTRAL_GENERATE_SPECIAL). */
MISTRAL_API mistral_status mistral_tool_calls_parse_text(const char *text, size_t len, mistral_tool_calls **out_calls);
/* Parses the tokens the session's last mistral_generate call sampled (refused while a call on it runs). */
MISTRAL_API mistral_status mistral_session_last_tool_calls(mistral_session *session, mistral_tool_calls **out_calls);
/* Number of calls; 0 for NULL. */
MISTRAL_API size_t mistral_tool_calls_count(const mistral_tool_calls *calls);
/* NUL-terminated strings owned by `calls` (valid until mistral_tool_calls_free); NULL for NULL or index >= count. */
MISTRAL_API const char *mistral_tool_calls_name(const mistral_tool_calls *calls, size_t index);
MISTRAL_API const char *mistral_tool_calls_arguments(const mistral_tool_calls *calls, size_t index);
MISTRAL_API const char *mistral_tool_calls_id(const mistral_tool_calls *calls, size_t index);
/* The text before the first [TOOL_CALLS] (all of it when there are no calls). NULL for NULL. */
MISTRAL_API const char *mistral_tool_calls_content(const mistral_tool_calls *calls);
/* OpenAI's "tool_calls" list as JSON: [{"id", "type": "function", "function": {"name", "arguments"}}]. */
MISTRAL_API const char *mistral_tool_calls_json(const mistral_tool_calls *calls);
/* NULL is a no-op. */
MISTRAL_API void mistral_tool_calls_free(mistral_tool_calls *calls);

#ifdef __cplusplus
}
#endif

#endif /* MISTRAL_H */
