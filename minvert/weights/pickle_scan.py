"""Bounds on a pickle, checked by walking its opcodes before CPython's unpickler runs it.

A few hundred bytes of pickle can make CPython allocate gigabytes (a memo index of 2**32),
nest a million tuples, or build a "billion laughs" tuple graph: tiny in memory because the
pieces are shared, but endless to format in a message or to hash as a dict key.
:func:`prescan` reads the opcodes with ``pickletools.genops`` (which builds nothing) and keeps a
symbolic stack to refuse all of these first. Used by :mod:`minvert.weights.torch_unpickle`.
"""
import pickle
import pickletools

# Bounds no state dict comes near (ResNet-152: a 70 KB pickle, ~25,000 opcodes, depth 5)
MAX_PICKLE_BYTES = 64 << 20
_MAX_OPCODES = 5_000_000
_MAX_MEMO = 1 << 20          # memo index: CPython allocates an array that long
_MAX_STACK = 1_000_000
_MAX_DEPTH = 64              # containers inside containers
_MAX_REACH = 5_000_000       # objects one object reaches, shared ones counted per path
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}


class Refused(pickle.UnpicklingError):
    """Something a state dict never contains, or a tensor that does not add up."""


def refuse(msg):
    raise Refused(msg)


def short(v):
    """A few dozen characters about ``v``, whatever it is (never formats it whole)."""
    if isinstance(v, bool) or v is None or type(v) is float:
        return repr(v)
    if type(v) is int:
        return repr(v) if v.bit_length() <= 64 else "a huge integer"
    if isinstance(v, (str, bytes)):
        return repr(v[:40]) + ("..." if len(v) > 40 else "")
    return f"a {type(v).__name__.strip('_')}"


def prescan(f):
    """Walk one pickle's opcodes from ``f``'s position to STOP, building nothing; refuse what
    would exhaust memory or time in CPython's unpickler or later; rewind ``f``.

    A symbolic stack holds (depth, reach) per object: depth = nesting of containers, reach =
    objects reachable counting shared ones once per path, the cost of formatting or hashing it.
    """
    start, stack, marks, memo = f.tell(), [], [], {}
    for count, (op, arg, pos) in enumerate(pickletools.genops(f)):
        if count > _MAX_OPCODES or (pos or 0) - start > MAX_PICKLE_BYTES:
            refuse("the pickle is far larger than any state dict")
        name = op.name
        if name == "STOP":
            break
        if name == "MARK":
            marks.append(len(stack))
        elif name in _MEMO_PUT or name == "MEMOIZE":
            index = len(memo) if name == "MEMOIZE" else arg
            if not stack or type(index) is not int or not 0 <= index < _MAX_MEMO:
                refuse(f"memo index {short(index)} out of range")
            memo[index] = stack[-1]
        elif name in _MEMO_GET:
            if arg not in memo:
                refuse(f"memo index {short(arg)} was never stored")
            stack.append(memo[arg])
        elif name == "DUP":
            stack.append(stack[-1] if stack else refuse("DUP on an empty stack"))
        else:
            before, taken = op.stack_before, []
            explicit = len(before)
            if pickletools.markobject in before:
                if not marks:
                    refuse(f"{name} without a MARK")
                mark = marks.pop()
                taken, stack[mark:] = stack[mark:], []
                explicit = before.index(pickletools.markobject)
            if explicit > len(stack):
                refuse(f"{name} on a stack too short")
            if explicit:
                taken, stack[-explicit:] = stack[-explicit:] + taken, []
            if op.stack_after:
                if name in _MUTATORS:  # the target stays the same object, now holding more
                    depth = max([taken[0][0]] + [d + 1 for d, _ in taken[1:]])
                    reach = taken[0][1] + sum(r for _, r in taken[1:])
                else:
                    depth = 1 + max((d for d, _ in taken), default=0)
                    reach = 1 + sum(r for _, r in taken)
                if depth > _MAX_DEPTH or reach > _MAX_REACH:
                    refuse("objects nested too deeply or sharing too much (a 'billion laughs' "
                         "graph?)")
                stack.extend([(depth, reach)] * len(op.stack_after))
        if len(stack) > _MAX_STACK or len(marks) > _MAX_STACK:
            refuse("the unpickler stack grows beyond any state dict's")
    else:
        raise EOFError("the pickle ends before its STOP opcode")
    f.seek(start)
