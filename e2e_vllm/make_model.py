#!/usr/bin/env python3
"""Build a tiny random-weight Qwen2-style model that vLLM can serve, fully offline.

Usage:  python make_model.py --out /tmp/tinymodel [--reasoning] [--force]

What it writes into --out:
  config.json, generation_config.json, model.safetensors   (Qwen2ForCausalLM, 2 layers, hidden 128)
  tokenizer.json            byte-level BPE trained here on a synthetic, seeded corpus
  tokenizer_config.json     with a Hermes/Qwen2.5-style chat_template (tools, <tool_call>, tool role)
  special_tokens_map.json

Weights are random but shaped so that the model behaves usefully for protocol tests:
  * logits over ordinary tokens are random (sampled text is gibberish, greedy is deterministic);
  * the end-of-turn token <|im_end|> gets a fixed extra logit so that generations END by
    themselves after a few dozen tokens on average (finish_reason "stop"), both when sampling
    and (less often) when greedy;
  * control tokens (<|im_start|>, <|endoftext|>, </tool_call>, <think>, ...) are strongly
    suppressed so they never appear by chance (guided decoding can still force them);
  * <tool_call> gets a small fixed logit (--tool-call-logit): it shows up rarely in free text,
    and after a forced call the grammar may pick it again, giving parallel tool calls;
  * with --reasoning, </think> gets an extra logit too and the chat template opens "<think>\n"
    after the assistant prompt (DeepSeek-R1 style), so `--reasoning-parser deepseek_r1` splits
    the output into reasoning + content.

Deterministic: same package versions + same arguments -> same files.
"""

import argparse
import json
import os
import random
import shutil
from pathlib import Path

CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a tiny test model.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\n' }}
        {%- set rc = message.reasoning_content if (message.reasoning_content is defined and message.reasoning_content) else (message.reasoning if (message.reasoning is defined and message.reasoning) else '') %}
        {%- if rc %}
            {{- '<think>\n' + rc + '\n</think>\n\n' }}
        {%- endif %}
        {%- if message.content %}
            {{- message.content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if tool_call.function is defined %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {%- if loop.first and not message.content %}{{- '<tool_call>\n{"name": "' }}{%- else %}{{- '\n<tool_call>\n{"name": "' }}{%- endif %}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if __REASONING__ %}
        {{- '<think>\n' }}
    {%- endif %}
{%- endif %}
"""

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Non-special added tokens: kept in decoded text (skip_special_tokens does not strip them),
# which is what vLLM's hermes tool parser and deepseek_r1 reasoning parser need.
EXTRA = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "weather",
    "city",
    "temperature",
    "forecast",
    "today",
    "tomorrow",
    "search",
    "query",
    "result",
    "file",
    "read",
    "write",
    "path",
    "tool",
    "call",
    "function",
    "arguments",
    "name",
    "value",
    "true",
    "false",
    "null",
    "list",
    "get",
    "set",
    "add",
    "remove",
    "update",
    "delete",
    "user",
    "assistant",
    "system",
    "message",
    "content",
    "text",
    "hello",
    "world",
    "please",
    "thanks",
    "help",
    "question",
    "answer",
    "json",
    "python",
    "code",
    "data",
    "error",
    "status",
    "ok",
    "request",
    "response",
    "stream",
    "token",
    "model",
    "server",
    "client",
    "proxy",
    "api",
    "key",
    "location",
    "unit",
    "celsius",
    "fahrenheit",
    "paris",
    "london",
    "tokyo",
    "berlin",
    "new",
    "york",
    "san",
    "francisco",
    "number",
    "string",
    "object",
    "array",
    "boolean",
    "integer",
]


def build_corpus(seed: int = 1234, n_lines: int = 6000):
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        kind = rng.random()
        if kind < 0.6:
            n = rng.randint(4, 18)
            s = " ".join(rng.choice(WORDS) for _ in range(n))
            s = s[0].upper() + s[1:] + rng.choice([".", ".", "?", "!", ":", ","])
            lines.append(s)
        elif kind < 0.85:
            obj = {
                rng.choice(WORDS): rng.choice([rng.choice(WORDS), rng.randint(0, 999), True, None])
                for _ in range(rng.randint(1, 4))
            }
            lines.append(json.dumps({"name": rng.choice(WORDS) + "_" + rng.choice(WORDS), "arguments": obj}))
        else:
            a, b = rng.choice(WORDS), rng.choice(WORDS)
            lines.append(f"def {a}_{b}(x, y={rng.randint(0, 99)}):\n    return x.{a}(y) + {rng.random():.3f}")
    return lines


def build_tokenizer(vocab_size: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL,  # ids 0,1,2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(build_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/tinymodel")
    ap.add_argument(
        "--reasoning",
        action="store_true",
        help="DeepSeek-R1 style: template opens <think>, </think> is likely",
    )
    ap.add_argument("--bpe-vocab", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--max-pos", type=int, default=8192)
    ap.add_argument("--spread", type=float, default=2.0, help="std of random logits over ordinary tokens")
    ap.add_argument(
        "--eos-logit", type=float, default=5.5, help="fixed logit of <|im_end|> (others ~N(0,spread^2))"
    )
    ap.add_argument(
        "--think-end-logit", type=float, default=5.5, help="fixed logit of </think> with --reasoning"
    )
    ap.add_argument(
        "--tool-call-logit",
        type=float,
        default=3.5,
        help="fixed logit of <tool_call>: rare in free text (~0.3%%/token), lets a forced "
        "tool_choice=required grammar continue with a 2nd parallel call (~10%%)",
    )
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()

    out = args.out
    marker = os.path.join(out, ".tinymodel-args.json")
    import hashlib

    want = json.dumps(
        vars(args)
        | {
            "out": None,
            "force": None,
            "template_sha": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:16],
        },
        sort_keys=True,
    )
    if os.path.exists(marker) and not args.force and Path(marker).read_text() == want:
        print(f"{out}: already built with the same arguments")
        return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer(args.bpe_vocab)
    n_tok = tok.get_vocab_size(with_added_tokens=True)
    vocab_padded = ((n_tok + 63) // 64) * 64
    ids = {t: tok.token_to_id(t) for t in SPECIAL + EXTRA}
    tok.save(os.path.join(out, "tokenizer.json"))

    added_decoder = {}
    for t in SPECIAL + EXTRA:
        added_decoder[str(ids[t])] = {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": t in SPECIAL,
        }
    template = CHAT_TEMPLATE.replace("__REASONING__", "true" if args.reasoning else "false")
    tcfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added_decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": args.max_pos,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(
            {
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            },
            f,
            indent=2,
        )

    torch.manual_seed(0)
    d = args.hidden
    cfg = Qwen2Config(
        vocab_size=vocab_padded,
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_pos,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        # Residual stream: dimension 0 carries a constant (half the energy), the rest is a
        # random per-token vector. After the final RMSNorm, h[0] ~ sqrt(d/2) for every position,
        # so lm_head[:, 0] acts as a per-token logit BIAS, and lm_head[:, 1:] gives random logits.
        emb = torch.randn(vocab_padded, d)
        emb[:, 0] = (d - 1) ** 0.5
        model.model.embed_tokens.weight.copy_(emb)
        h0 = (d / 2) ** 0.5
        tau = args.spread / h0  # std of logits over ordinary tokens ~= spread
        lm = torch.randn(vocab_padded, d) * tau
        lm[:, 0] = 0.0
        # suppress: padding rows, control tokens, and tokens that decode to U+FFFD (lone UTF-8
        # bytes) or to control characters other than newline/tab, so random text stays readable
        junk = []
        for j in range(n_tok):
            sj = tok.decode([j])
            if "\ufffd" in sj or any(ord(ch) < 32 and ch not in "\n\t" for ch in sj):
                junk.append(j)
        for j in list(range(n_tok, vocab_padded)) + [ids[t] for t in SPECIAL + EXTRA] + junk:
            lm[j, :] = 0.0
            lm[j, 0] = -30.0 / h0
        eos = ids["<|im_end|>"]
        lm[eos, :] = 0.0
        lm[eos, 0] = args.eos_logit / h0
        tc = ids["<tool_call>"]
        lm[tc, :] = 0.0
        lm[tc, 0] = args.tool_call_logit / h0
        if args.reasoning:
            te = ids["</think>"]
            lm[te, :] = 0.0
            lm[te, 0] = args.think_end_logit / h0
        model.lm_head.weight.copy_(lm)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out, safe_serialization=True)
    # make sure config says float32 (vLLM's --dtype auto follows it)
    cpath = os.path.join(out, "config.json")
    c = json.loads(Path(cpath).read_text())
    c["torch_dtype"] = "float32"
    c["dtype"] = "float32"
    Path(cpath).write_text(json.dumps(c, indent=2))
    with open(marker, "w") as f:
        f.write(want)
    print(
        json.dumps(
            {
                "out": out,
                "tokens": n_tok,
                "vocab_padded": vocab_padded,
                "ids": ids,
                "params": sum(p.numel() for p in model.parameters()),
            },
            indent=None,
        )
    )


if __name__ == "__main__":
    main()
