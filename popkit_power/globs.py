"""Shell-style wildcards (`*`, `?`, `[abc]`, `[!a-z]`), matched as `fnmatch.fnmatchcase` does, without `re`.

The guardrails' PreToolUse hook matches every pattern here. `fnmatch` compiles each pattern with `re`, whose import
alone (with `enum`) cost ~6 ms of a ~12 ms `python -c pass` on the benchmark machine (tools/BENCHMARKS.md,
"Guardrails"), which is why this small matcher exists; tests/test_guard_evasions.py holds it to `fnmatchcase` on
random cases.
"""

from __future__ import annotations


def glob_match(text: str, pattern: str) -> bool:
    """Whether all of `text` matches `pattern` (`*` also matches `/`, as in fnmatchcase)."""
    t = p = 0
    star_p, star_t = -1, 0
    size, length = len(text), len(pattern)
    while t < size:
        if p < length:
            char = pattern[p]
            if char == "*":
                star_p, star_t = p, t
                p += 1
                continue
            if char == "?":
                t += 1
                p += 1
                continue
            if char == "[":
                end, hit = _bracket(pattern, p, text[t])
                if end < 0:  # no closing bracket: a literal `[`
                    if text[t] == "[":
                        t += 1
                        p += 1
                        continue
                elif hit:
                    t += 1
                    p = end
                    continue
            elif char == text[t]:
                t += 1
                p += 1
                continue
        if star_p < 0:
            return False
        star_t += 1  # let the last `*` take one more character
        t, p = star_t, star_p + 1
    while p < length and pattern[p] == "*":
        p += 1
    return p == length


def _bracket(pattern: str, start: int, char: str) -> tuple[int, bool]:
    """(the index after the `]` closing the class at `start`, whether `char` is in it); (-1, False) if unclosed."""
    index = start + 1
    negate = index < len(pattern) and pattern[index] == "!"
    if negate:
        index += 1
    first = index
    hit = False
    while index < len(pattern):
        current = pattern[index]
        if current == "]" and index > first:
            return index + 1, hit != negate
        if index + 2 < len(pattern) and pattern[index + 1] == "-" and pattern[index + 2] != "]":
            if current <= char <= pattern[index + 2]:
                hit = True
            index += 3
            continue
        if current == char:
            hit = True
        index += 1
    return -1, False
