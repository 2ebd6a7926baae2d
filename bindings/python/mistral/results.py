"""What generation returns: str subclasses carrying logprobs and tool calls."""
from __future__ import annotations

from typing import NamedTuple, Optional

class Completion(str):
    """The text generate() / chat() return (a str), with `.logprobs` when they were asked for: OpenAI's shape,
    {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]} (each entry also
    carries the token's "id"), else None."""

    logprobs: Optional[dict] = None


class Piece(str):
    """A piece stream() yields (a str), with `.logprobs`: the OpenAI-shaped entries of the tokens it completes
    (a list, possibly empty), or None when logprobs were not asked for."""

    logprobs: Optional[list] = None


class ChatReply(Completion):
    """Session.chat's answer: the text (a str, as before; `.logprobs` as on a Completion), plus the OpenAI-shaped `tool_calls` the model made (None
    when it made none), `tool_call_error` (the parser's message when the model wrote malformed call JSON; the text
    is then everything it wrote) and `message`, the reply as an assistant message to append to the conversation."""

    tool_calls: Optional[list] = None
    tool_call_error: Optional[str] = None

    @property
    def message(self) -> dict:
        """The reply as the assistant message to append to the conversation (with its tool_calls, if any)."""
        if self.tool_calls:
            return {"role": "assistant", "content": str(self) or None, "tool_calls": self.tool_calls}
        return {"role": "assistant", "content": str(self)}


class BatchStats(NamedTuple):
    """How much batching a model's sessions got (Model.batch_stats)."""

    steps: int          # forward steps run
    batched_steps: int  # steps that evaluated more than one session
    max_sessions: int   # the most sessions one step evaluated
    max_rows: int       # the most positions one step evaluated
    rows: int           # positions evaluated in all steps
    busy_ns: int        # nanoseconds spent in forward steps
