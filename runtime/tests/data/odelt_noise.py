#!/usr/bin/env python3
"""odelt noise v1 in plain Python: the same x0 as the Rust API, the CLI and the C ABI for a seed.

    ChaCha8 (rand_chacha 0.3 layout) keyed by the u64 seed little-endian + 24 zero bytes,
    nonce 0, block counter from 0; u64 = two output words, the first as the low half;
    u = (u64 >> 11) * 2^-53; Box-Muller in float64 on pairs (u1, u2):
    r = sqrt(-2 ln(1 - u1)), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2); values z0, z1, ...
    rounded to float32 fill x0 row-major [N, C, H, W].

Usage: python odelt_noise.py SEED COUNT   (prints the values)
"""

import math
import struct
import sys

import numpy as np


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 7)


def _block(key, counter, rounds=8):
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    state += list(struct.unpack("<8I", key)) + [counter & 0xFFFFFFFF, counter >> 32, 0, 0]
    w = state[:]
    for _ in range(rounds // 2):
        _quarter(w, 0, 4, 8, 12)
        _quarter(w, 1, 5, 9, 13)
        _quarter(w, 2, 6, 10, 14)
        _quarter(w, 3, 7, 11, 15)
        _quarter(w, 0, 5, 10, 15)
        _quarter(w, 1, 6, 11, 12)
        _quarter(w, 2, 7, 8, 13)
        _quarter(w, 3, 4, 9, 14)
    return [(a + b) & 0xFFFFFFFF for a, b in zip(w, state)]


def _words(seed):
    key = struct.pack("<Q", seed) + b"\0" * 24
    counter = 0
    while True:
        yield from _block(key, counter)
        counter += 1


def normal(seed: int, count: int) -> np.ndarray:
    words = _words(seed)

    def uniform():
        lo, hi = next(words), next(words)
        return ((lo | (hi << 32)) >> 11) * 2.0**-53

    out = []
    while len(out) < count:
        u1, u2 = uniform(), uniform()
        r = math.sqrt(-2.0 * math.log(1.0 - u1))
        angle = 2.0 * math.pi * u2
        out += [r * math.cos(angle), r * math.sin(angle)]
    return np.array(out[:count], dtype=np.float32)


if __name__ == "__main__":
    print(normal(int(sys.argv[1]), int(sys.argv[2])).tolist())
