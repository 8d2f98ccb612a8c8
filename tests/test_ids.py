"""Request ids: 32 hex digits, never repeated, never shared with a forked worker."""

from __future__ import annotations

import os
import re

from proxy.ids import new_request_id


def test_ids_are_128_bit_hex_and_unique() -> None:
    ids = [new_request_id() for _ in range(2000)]  # several reads from the OS
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_hand_out_the_parents_unused_ids() -> None:
    new_request_id()  # the parent now holds unused ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, "".join(new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    child_ids = {child[i:i + 32] for i in range(0, len(child), 32)}
    parent_ids = {new_request_id() for _ in range(300)}
    assert len(child_ids) == 10
    assert not child_ids & parent_ids
