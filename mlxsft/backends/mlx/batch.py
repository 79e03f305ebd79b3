"""Many answers at once with MLX: one prefill per distinct prompt, slots refilled as answers end, per-row seeds.

    rows = decode_rows(model, prompts, stop, hf, Sampling(temp=0.8, max_tokens=64), seeds=[1, 2, ...], slots=32)
    rows[i].turn.generated                        # the tokens of prompts[i], in the callers' order

What makes it faster than ``mlx_lm.batch_generate`` for curation (``bench/bench_generate_batch.py``):

- **One prefill per distinct prompt.** Best-of-K and distill ask each prompt K times; the prompt's keys and
  values are computed once (prompts bucketed by length, a few hundred to a few thousand tokens per forward
  pass) and copied into each of its K slots. mlx-lm prefills every request.
- **One pass for what every prompt starts with.** A chat template's header and default system prompt open
  every prompt (27 of the ~47 tokens of SmolLM2's bundled questions): computed once and copied to each row,
  then the rest of each prompt in one right-padded pass (no padding before it to mask).
- **Slots rewritten in place.** Each of ``slots`` rows owns a region of one preallocated cache per layer
  (``SlotKVCache``) with its own length; a finished row's slot takes the next request at once by writing the
  prompt's keys there. mlx-lm's ``BatchKVCache`` copies the whole batch's cache whenever a row leaves or
  joins. When no request is left the cache is compacted to the live rows now and then, so the tail of a
  batch does not decode empty slots.
- **Rows stop at their own end of turn** (``BatchRow``: the same ``TurnStream`` rule as one-by-one
  generation), never decoding padding.

Greedy rows give the same tokens as ``generate_answer`` one by one (``tests/backends/test_mlx_batch.py``);
the tokens of a sampled row depend only on its seed (an inverse-CDF draw with a per-row key: the same answer
whatever the batch size, the other rows or the order), so the K samples of a prompt differ by their seeds alone.
``supports(model)`` says whether the model's cache is the plain ``KVCache`` this needs (else
``generate.generate_answers_batch`` uses mlx-lm's ``BatchGenerator``).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional, Sequence

from mlxsft.backends.generation import BatchRow, Sampling, StopCondition, shared_start

PREFILL_TOKENS = 4096  # padded prompt tokens per prefill forward pass: big matmuls, bounded activations
PREFILL_STEP = 2048  # prompt columns per forward pass (mlx-lm's prefill_step_size)
CACHE_STEP = 256  # cache columns are added this many at a time (as mlx-lm's KVCache does)
COMPACT_AT = 0.75  # with no request waiting, drop empty slots once the live rows fall to this share


def supports(model: Any) -> bool:
    """True when every layer's cache is mlx-lm's plain ``KVCache`` (no sliding window, no state-space layers)."""
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    return all(type(c) is KVCache for c in make_prompt_cache(model))


class Slots:
    """What the per-layer caches share: each slot's length (the position its next token is written at)."""

    def __init__(self, n: int):
        self.lengths = [0] * n
        self.offset: Any = None  # mx.array of ``lengths`` for the forward pass being built
        self.width = 1  # attention columns this step: the longest live row plus the new token

    def begin_step(self) -> None:
        import mlx.core as mx

        self.offset = mx.array(self.lengths, dtype=mx.int32)
        self.width = max(self.lengths) + 1


class SlotKVCache:
    """One layer's keys and values for all slots, ``(slots, heads, columns, dim)``; row ``r`` holds
    ``lengths[r]`` valid columns and the decode step writes its new token at column ``lengths[r]``.

    It speaks the cache interface mlx-lm's models use (``offset`` for RoPE, ``update_and_fetch``,
    ``make_mask``), for one token per row at a time.
    """

    def __init__(self, slots: Slots, like: tuple[Any, Any], rows: int):
        self.slots = slots
        k, v = like  # a prefilled layer's keys and values: heads, dims and dtype
        self.rows, self.heads, self.k_dim, self.v_dim, self.dtype = rows, k.shape[1], k.shape[3], v.shape[3], k.dtype
        self.keys: Any = None
        self.values: Any = None

    @property
    def offset(self) -> Any:
        return self.slots.offset

    def reserve(self, columns: int) -> None:
        """Make room for ``columns`` positions per row (grown ``CACHE_STEP`` at a time)."""
        import mlx.core as mx

        have = 0 if self.keys is None else self.keys.shape[2]
        if columns <= have:
            return
        add = -(-(columns - have) // CACHE_STEP) * CACHE_STEP
        new_k = mx.zeros((self.rows, self.heads, add, self.k_dim), self.dtype)
        new_v = mx.zeros((self.rows, self.heads, add, self.v_dim), self.dtype)
        if self.keys is None:
            self.keys, self.values = new_k, new_v
        else:
            self.keys = mx.concatenate([self.keys, new_k], axis=2)
            self.values = mx.concatenate([self.values, new_v], axis=2)

    def write_prompt(self, slot: int, keys: Any, values: Any) -> None:
        """Put a prefilled prompt's ``(1, heads, n, dim)`` keys and values at the start of ``slot``."""
        n = keys.shape[2]
        self.reserve(n + 1)
        if n:
            self.keys[slot:slot + 1, :, :n, :] = keys
            self.values[slot:slot + 1, :, :n, :] = values

    def keep(self, rows: list[int], columns: int) -> None:
        """Only ``rows`` from now on, and of their columns the first ``columns`` (the rest hold nothing yet):
        the copy is as small as it can be."""
        import mlx.core as mx

        idx = mx.array(rows)
        self.keys, self.values = self.keys[idx, :, :columns], self.values[idx, :, :columns]
        self.rows = len(rows)

    def update_and_fetch(self, keys: Any, values: Any) -> tuple[Any, Any]:
        import mlx.core as mx

        if keys.shape[2] != 1:
            raise ValueError("SlotKVCache decodes one token per row at a time")
        at = self.slots.offset[:, None, None, None]
        self.keys = mx.put_along_axis(self.keys, mx.broadcast_to(at, keys.shape), keys, axis=2)
        self.values = mx.put_along_axis(self.values, mx.broadcast_to(at, values.shape), values, axis=2)
        w = self.slots.width
        return self.keys[..., :w, :], self.values[..., :w, :]

    def make_mask(self, N: int, **kwargs: Any) -> Any:
        import mlx.core as mx

        cols = mx.arange(self.slots.width)
        return (cols[None, :] <= self.slots.offset[:, None])[:, None, None, :]


# ----------------------------------------------------------------------------- prefill
def prefill(model: Any, prompts: list[list[int]]) -> list[list[tuple[Any, Any]]]:
    """Keys and values of each prompt's tokens (all but its last, which the first decode step feeds), per layer:
    ``result[i][layer] = (keys, values)`` shaped ``(1, heads, len - 1, dim)``. The logits are never evaluated,
    so the LM head costs nothing here.

    The tokens all prompts start with (a chat template's header and default system prompt: 27 of SmolLM2's
    ~47-token prompts here) are computed once, in a one-row pass, and copied to every row; the rest of each
    prompt follows in one right-padded pass for all of ``prompts``. Right padding needs no mask beyond the causal
    one: a row's padding comes after its tokens, which never attend to it, and every row's tokens sit at the
    positions they have alone."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    bodies = [p[:-1] for p in prompts]
    width = max(len(b) for b in bodies)
    if width == 0:
        return [[] for _ in prompts]
    shared = shared_start(bodies)
    caches = make_prompt_cache(model)  # plain KVCache per layer (``supports``)
    if shared:
        _feed(model, mx.array([bodies[0][:shared]]), caches)
        for c in caches:  # the shared keys and values, one copy per row
            c.keys = mx.repeat(c.keys[..., :shared, :], len(bodies), axis=0)
            c.values = mx.repeat(c.values[..., :shared, :], len(bodies), axis=0)
    if width > shared:
        _feed(model, mx.array([b[shared:] + [0] * (width - len(b)) for b in bodies]), caches)
    out = [[(c.keys[i:i + 1, :, :len(b), :], c.values[i:i + 1, :, :len(b), :]) for c in caches]
           for i, b in enumerate(bodies)]
    mx.eval(out)
    return out


def _feed(model: Any, tokens: Any, caches: list[Any]) -> None:
    """``tokens`` into ``caches``, ``PREFILL_STEP`` columns a pass (as mlx-lm does: bounded attention scores)."""
    import mlx.core as mx

    for at in range(0, tokens.shape[1], PREFILL_STEP):
        model(tokens[:, at:at + PREFILL_STEP], cache=caches)
        mx.eval([(c.keys, c.values) for c in caches])


def prefill_chunks(prompts: list[list[int]], order: list[int]) -> list[list[int]]:
    """``order`` (indices into ``prompts``, shortest first) cut into prefill passes of at most ``PREFILL_TOKENS``
    padded tokens: neighbours in length order pad little."""
    chunks: list[list[int]] = []
    for i in order:
        chunk = chunks[-1] if chunks else None
        if chunk and len(prompts[i]) * (len(chunk) + 1) <= PREFILL_TOKENS:
            chunk.append(i)
        else:
            chunks.append([i])
    return chunks


# ----------------------------------------------------------------------------- sampling
def row_keys(seeds: Sequence[int]) -> Any:
    """One PRNG key per row, ``(rows, 2)``."""
    import mlx.core as mx

    return mx.stack([mx.random.key(int(s) % (1 << 63)) for s in seeds])


def sample(logits: Any, sampling: Sampling, keys: Any) -> tuple[Any, Any]:
    """Next token of each row and the rows' advanced keys.

    Greedy: the argmax of the logits. mlx-lm takes it of the log-probabilities, the logits shifted by a constant
    per row: the same token (short of two logits that rounding makes equal), without a logsumexp over the
    vocabulary, which on a CPU cost ~60 ms of a ~240 ms 32-row step of SmolLM2 (49k vocabulary; MLX's exp runs
    at ~20-30 ns an entry there). Sampled: an inverse-CDF draw from the temperature-scaled (and top-p cut)
    distribution, each row's uniform from its own key: one exp an entry, where Gumbel-max (mlx-lm's categorical)
    takes two logs an entry and a logsumexp first."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p

    if sampling.temp <= 0:
        return mx.argmax(logits, axis=-1), keys
    if 0 < sampling.top_p < 1:
        logits = apply_top_p(logits - mx.logsumexp(logits, axis=-1, keepdims=True), sampling.top_p)
    scaled = logits * (1.0 / sampling.temp)
    weights = mx.exp(scaled - mx.max(scaled, axis=-1, keepdims=True))  # the top-p cut's -inf entries: 0
    cdf = mx.cumsum(weights, axis=-1)
    split = mx.vmap(mx.random.split)(keys)
    keys, draw = split[:, 0], split[:, 1]
    u = mx.vmap(lambda k: mx.random.uniform(key=k))(draw)
    # the first entry whose cumulative weight passes u * total (a zero-weight entry is never the first)
    token = (cdf <= (u[:, None] * cdf[:, -1:])).sum(axis=-1)
    return mx.minimum(token, logits.shape[-1] - 1), keys


# ----------------------------------------------------------------------------- the decode loop
def decode_rows(model: Any, prompts: list[list[int]], stop: StopCondition, hf: Any, sampling: Sampling, *,
                seeds: Optional[Sequence[int]] = None, slots: int = 32) -> list[BatchRow]:
    """Answer every prompt (``sampling.max_tokens`` at most each); ``seeds[i]`` seeds row ``i`` when sampling.
    Returns one finished ``BatchRow`` per prompt, in order."""
    import mlx.core as mx

    n = len(prompts)
    rows = [BatchRow(stop, hf) for _ in prompts]
    if n == 0:
        return rows
    if sampling.temp > 0 and (seeds is None or len(seeds) != n):
        raise ValueError("sampled batch generation needs one seed per prompt")
    # one prefill per distinct prompt; its K requests wait next to each other, shortest prompts first
    distinct: dict[tuple[int, ...], int] = {}
    prompt_of = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
    uniques = [list(p) for p in distinct]
    users = [0] * len(uniques)
    for u in prompt_of:
        users[u] += 1
    order = sorted(range(len(uniques)), key=lambda u: len(uniques[u]))
    chunks = deque(prefill_chunks(uniques, order))
    rank = {u: i for i, u in enumerate(order)}
    queue = deque(sorted(range(n), key=lambda r: rank[prompt_of[r]]))
    kv: dict[int, list[tuple[Any, Any]]] = {}

    size = min(max(1, slots), n)
    state = Slots(size)
    caches: list[SlotKVCache] = []
    slot_row: list[Optional[int]] = [None] * size
    inputs = [0] * size
    keys = row_keys([0] * size)
    seed_keys = row_keys(seeds) if sampling.temp > 0 else None

    def fill(slot: int) -> None:
        r = queue.popleft()
        u = prompt_of[r]
        while u not in kv:
            chunk = chunks.popleft()
            kv.update(zip(chunk, prefill(model, [uniques[c] for c in chunk])))
        layers = kv[u] or empty_layers(model)
        if not caches:
            caches.extend(SlotKVCache(state, like, size) for like in layers)
        for c, (k, v) in zip(caches, layers):
            c.write_prompt(slot, k, v)
        users[u] -= 1
        if not users[u]:
            del kv[u]  # every sample of this prompt has its copy
        slot_row[slot], inputs[slot] = r, prompts[r][-1]
        state.lengths[slot] = len(prompts[r]) - 1
        if seed_keys is not None:
            keys[slot] = seed_keys[r]

    while True:
        for s in range(len(slot_row)):
            if slot_row[s] is None and queue:
                fill(s)
        live = [s for s, r in enumerate(slot_row) if r is not None]
        if not live:
            return rows
        if not queue and len(live) <= COMPACT_AT * len(slot_row):
            columns = max(state.lengths[s] for s in live) + 1
            for c in caches:
                c.keep(live, columns)
            slot_row = [slot_row[s] for s in live]
            inputs = [inputs[s] for s in live]
            state.lengths = [state.lengths[s] for s in live]
            keys = keys[mx.array(live)]
        for s, r in enumerate(slot_row):
            if r is None:
                state.lengths[s] = 0  # an empty slot computes a throwaway row at column 0
        state.begin_step()
        for c in caches:
            c.reserve(state.width)
        logits = model(mx.array(inputs, dtype=mx.int32)[:, None], cache=caches)[:, -1, :]
        tokens, keys = sample(logits, sampling, keys)
        mx.eval(tokens, keys, [(c.keys, c.values) for c in caches])
        for s, token in enumerate(tokens.tolist()):
            r = slot_row[s]
            if r is None:
                continue
            row = rows[r]
            row.add(token)
            state.lengths[s] += 1
            inputs[s] = token
            if not row.live or len(row.turn.generated) >= sampling.max_tokens:
                slot_row[s] = None


def empty_layers(model: Any) -> list[tuple[Any, Any]]:
    """Zero-length keys and values shaped like the model's, per layer (a prompt of a single token)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    caches = make_prompt_cache(model)
    model(mx.array([[0]]), cache=caches)
    return [(c.keys[..., :0, :], c.values[..., :0, :]) for c in caches]
