"""mistral-cli as a user meets it: every command's --help, unknown options and bad values refused with the usage line
(exit 2), the --verbose summary, `info` (metadata and the memory estimate), the load progress bar only on a terminal,
Ctrl-C in `chat` (a pty: the answer stops, the prompt comes back, the next turn still holds the first), and the man
page's version."""
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

import mistral
from conftest import BUILD, CHAT_PROMPT, FIXTURES, MODEL_PATH, ROOT

CLI = os.path.join(BUILD, "mistral-cli")
TINY_HF = os.path.join(FIXTURES, "tiny-s", "hf")
TEKKEN = os.path.join(FIXTURES, "tiny-s", "tokenizer", "tekken.json")
COMMANDS = ["generate", "chat", "tokenize", "info", "bench"]
SUMMARY = re.compile(r"\[prompt (\d+) tokens \((\d+) reused\), ([\d.]+|-) tok/s; generated (\d+) tokens, ([\d.]+|-) tok/s; "
                     r"context (\d+)/(\d+); stop: (\w+)\]")


def run(args, **kw):
    return subprocess.run([CLI] + args, capture_output=True, text=True, timeout=120, **kw)


# ---- help and usage errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_per_command_help(command):
    r = run([command, "--help"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: mistral-cli {command} ")
    assert "-m, --model" in r.stdout and "-h, --help" in r.stdout
    assert run(["help", command]).stdout == r.stdout
    assert run([command, "-h"]).stdout == r.stdout
    # each command lists its own options, not the others'
    assert ("--temp" in r.stdout) == (command in ("generate", "chat"))
    assert ("--bos" in r.stdout) == (command == "tokenize")
    assert ("--pp" in r.stdout) == (command == "bench")


def test_general_help_lists_every_command():
    r = run(["--help"])
    assert r.returncode == 0
    for command in COMMANDS:
        assert f"mistral-cli {command} " in r.stdout


def usage_error(args, message, command="generate"):
    r = run(args)
    assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert f"usage: mistral-cli {command} " in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("args,message", [
    (["--tmp", "0"], "unknown option '--tmp' for generate"),        # a typo no longer swallows its value
    (["--temperature=0"], "unknown option '--temperature' for generate"),
    (["--bos"], "unknown option '--bos' for generate"),              # tokenize's switch
    (["--temp", "abc"], "--temp expects a number >= 0, got 'abc'"),
    (["--temp", "-1"], "--temp expects a number >= 0, got '-1'"),
    (["--temp", "nan"], "--temp expects a number >= 0, got 'nan'"),
    (["-n", "ten"], "-n expects an integer, got 'ten'"),
    (["-t", "9999"], "-t expects an integer in 0...512, got '9999'"),
    (["-c", "-5"], "-c expects an integer in 0..."),
    (["--top-p", "2"], "--top-p expects a number in (0, 1], got '2'"),
    (["--min-p", "-0.1"], "--min-p expects a number in [0, 1]"),
    (["--repeat-penalty", "0"], "--repeat-penalty expects a number > 0"),
    (["--seed", "-3"], "--seed expects an unsigned integer, got '-3'"),
    (["--kv", "f8"], "--kv must be f16, f32 or q8_0, got 'f8'"),
    (["--weights", "q5_k"], "--weights takes q8_0 or q4_0, not 'q5_k'"),
    (["stray"], "unexpected argument 'stray'"),
    (["--ignore-eos=1"], "option --ignore-eos takes no value"),
])
def test_generate_flag_errors(args, message):
    usage_error(["generate", "-m", MODEL_PATH, "-p", "Hi"] + args, message)


def test_missing_values_and_operands():
    usage_error(["generate", "-m", MODEL_PATH, "-p"], "option -p needs a value")
    usage_error(["generate", "-m", MODEL_PATH], "missing -p PROMPT")
    usage_error(["generate", "-p", "Hi"], "missing -m MODEL")
    usage_error(["tokenize", "-m", MODEL_PATH], "missing TEXT", "tokenize")
    usage_error(["tokenize", "-m", MODEL_PATH, "--temp", "0", "x"], "unknown option '--temp' for tokenize", "tokenize")
    usage_error(["chat", "-m", MODEL_PATH, "--prompt", "x"], "unknown option '--prompt' for chat", "chat")
    usage_error(["bench", "-m", MODEL_PATH, "--reps", "0"], "--reps expects an integer in 1...1000", "bench")
    usage_error(["info", MODEL_PATH, "--image", "x.png"], "unknown option '--image' for info", "info")
    r = run(["frobnicate"])
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr and "usage:" in r.stderr


def test_equals_form_and_aliases_still_work():
    r = run(["generate", "--model", MODEL_PATH, "--prompt", CHAT_PROMPT, "--temp=0", "--n-predict=8", "-t", "2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "The capital of France is Paris."


# ---- --verbose, no progress bar off a terminal -----------------------------------------------------------------

def test_verbose_summary_on_stderr_only():
    r = run(["generate", "-m", MODEL_PATH, "-p", "Once upon a time", "--temp", "0", "-n", "12", "--ignore-eos",
             "-t", "2", "--verbose"])
    assert r.returncode == 0, r.stderr
    m = SUMMARY.search(r.stderr)
    assert m, r.stderr
    n_prompt = len(mistral.Model(MODEL_PATH, vocab_only=True).tokenize("Once upon a time"))
    assert int(m.group(1)) == n_prompt and int(m.group(2)) == 0
    assert int(m.group(4)) == 12 and m.group(8) == "maxTokens"
    assert int(m.group(6)) == n_prompt + 12 and int(m.group(7)) == 4096
    assert float(m.group(3)) > 0 and float(m.group(5)) > 0
    assert "[prompt" not in r.stdout
    # stderr is a pipe: no progress bar
    assert "loading" not in r.stderr and "\r" not in r.stderr


def test_no_summary_without_verbose():
    r = run(["generate", "-m", MODEL_PATH, "-p", "Hi", "--temp", "0", "-n", "4", "-t", "2"])
    assert r.returncode == 0 and r.stderr == ""


# ---- info ----------------------------------------------------------------------------------------------------------

def mib(x):
    return x / 1048576


def test_info_prints_metadata_and_the_estimate():
    r = run(["info", MODEL_PATH, "-c", "2048", "-t", "2"])
    assert r.returncode == 0, r.stderr
    m = mistral.Model(MODEL_PATH, vocab_only=True)
    e = mistral.estimate(MODEL_PATH, n_ctx=2048, threads=2)
    out = r.stdout
    assert "format: gguf" in out and "architecture: llama" in out
    assert "layers: 30, embedding: 576" in out and "9 heads, 3 KV heads, head dim 64" in out
    assert f"vocabulary: {m.n_vocab} tokens" in out and "chat template: chatml" in out
    assert f"KV cache:         {mib(e.kv_bytes):.1f} MiB ({e.kv_bytes_per_position} bytes per position)" in out
    assert f"total:            {mib(e.total_bytes):.1f} MiB" in out
    assert "memory for n_ctx 2048, KV f16" in out


def test_info_for_a_converting_load():
    args = ["info", "-m", TINY_HF, "--tokenizer", TEKKEN, "-c", "8192", "--kv", "f32", "--weights", "q8_0"]
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert "weights as Q8_0" in r.stdout and "vision encoder: yes" in r.stdout
    assert "(1024 bytes per position)" in r.stdout  # 2 x 2 layers x 2 KV heads x 32 x 4 bytes
    r = run(["info", os.path.join(ROOT, "Package.swift")])
    assert r.returncode == 1 and "MISTRAL_ERR_FORMAT" in r.stderr


# ---- the man page --------------------------------------------------------------------------------------------------

def test_man_page_version_is_the_headers():
    with open(os.path.join(ROOT, "include", "mistral.h")) as f:
        version = re.search(r'#define MISTRAL_VERSION_STRING "([^"]+)"', f.read()).group(1)
    with open(os.path.join(ROOT, "debian", "mistral.1")) as f:
        page = f.read()
    th = re.search(r'^\.TH MISTRAL 1 "[^"]*" "libmistral ([^"]+)"', page, re.M)
    assert th and th.group(1) == version
    for command in COMMANDS:
        assert f".B mistral {command}" in page


# ---- a terminal: progress bar, Ctrl-C in chat -------------------------------------------------------------------

class Pty:
    """mistral-cli on a pseudo-terminal (stdin, stdout and stderr), read with a deadline."""

    def __init__(self, args):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([CLI] + args, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def read_until(self, pattern, timeout=120):
        """Reads until `pattern` (a regex over everything read so far, from `start`) matches; returns the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.out, self.mark)
            if m:
                return m
            left = deadline - time.time()
            assert left > 0, f"timed out waiting for {pattern!r}; got {self.out[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"mistral-cli ended while waiting for {pattern!r}: {self.out[-2000:]!r}"
                self.out += chunk

    mark = 0

    def send(self, text):
        self.mark = len(self.out)
        os.write(self.master, text.encode())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def test_chat_ctrl_c_stops_the_answer_and_keeps_the_conversation():
    t = Pty(["chat", "-m", MODEL_PATH, "-t", "2", "-c", "2048", "--temp", "0", "-n", "1500", "--ignore-eos",
             "--verbose"])
    try:
        t.read_until(rb"> ")
        assert b"loading " in t.out and b"%" in t.out  # the progress bar, on a terminal
        t.send("Write a very long story about a dragon who learns to bake bread.\n")
        # the answer streams; interrupt it well before its 1500 tokens
        t.read_until(rb"Write a very long story[^\n]*\n(.|\n){200}")
        os.kill(t.proc.pid, signal.SIGINT)
        first = t.read_until(SUMMARY.pattern.encode())
        t.read_until(rb"> ")
        assert b"[interrupted]" in t.out and first.group(8) == b"interrupted"
        assert t.proc.poll() is None, "Ctrl-C during an answer must not end the chat"
        prompt1, context1 = int(first.group(1)), int(first.group(6))
        generated1 = int(first.group(4))
        assert 0 < generated1 < 1500 and context1 == prompt1 + generated1

        t.send("Thank you! Now tell it again, longer.\n")
        t.read_until(rb"longer\.[^\n]*\n(.|\n){80}")
        os.kill(t.proc.pid, signal.SIGINT)  # --ignore-eos: this answer too runs until stopped
        second = t.read_until(SUMMARY.pattern.encode())
        prompt2, reused2, context2 = int(second.group(1)), int(second.group(2)), int(second.group(6))
        # the second turn's prompt is the whole conversation: the first question and the partial answer are in it,
        # and the session still held them (reused, not recomputed)
        assert prompt2 > prompt1 + generated1 // 2
        assert reused2 >= prompt1
        assert context2 > context1
        t.read_until(rb"> ")
        os.write(t.master, b"\x04")  # end of input at the prompt ends the chat
        assert t.proc.wait(timeout=60) == 0
    finally:
        t.close()


def test_chat_ctrl_c_at_the_prompt_ends_it():
    t = Pty(["chat", "-m", MODEL_PATH, "-t", "2", "-c", "256"])
    try:
        t.read_until(rb"> ")
        os.kill(t.proc.pid, signal.SIGINT)
        assert t.proc.wait(timeout=60) == 130
    finally:
        t.close()
