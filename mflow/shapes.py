"""Shape rules: each takes the operand shapes (and the operation's attributes)
and returns the result's shape, or raises ShapeError saying what is wrong.

The rules are pure functions of shapes, so the graph strategies can build
shape-consistent programs without evaluating anything. `apply` prefixes the
operation's name to every message.
"""


class ShapeError(ValueError):
    """Operands whose shapes the operation cannot take, named with their shapes."""


def same(x):
    return x


def broadcast(a, b):
    """Element-wise operands broadcast the numpy way, axis by axis."""
    if a == b:
        return a
    out = []
    for axis, (m, n) in enumerate(zip(a, b)):
        if m != n and m != 1 and n != 1:
            raise ShapeError(
                f"cannot broadcast {a} with {b}: axis {axis} has sizes {m} and {n}; "
                "each axis needs equal sizes or a size of 1")
        out.append(max(m, n))
    return tuple(out)


def matmul(a, b):
    if a[1] != b[0]:
        raise ShapeError(f"cannot multiply {a} by {b}: inner dimensions {a[1]} and {b[0]} differ")
    return (a[0], b[1])


def transpose(x):
    return (x[1], x[0])


def _axis(axis, allowed=(0, 1)):
    if isinstance(axis, bool) or axis not in allowed:  # True == 1, but is no axis
        names = [str(a) for a in allowed]
        raise ShapeError(f"axis must be {', '.join(names[:-1])} or {names[-1]}; got {axis!r}")
    return axis


def reduce(x, axis):
    axis = _axis(axis, (None, 0, 1))
    return (1, 1) if axis is None else (1, x[1]) if axis == 0 else (x[0], 1)


def softmax(x, axis):
    _axis(axis)
    return x


def concat(*shapes, axis):
    _axis(axis)
    if not shapes:
        raise ShapeError("needs at least one operand")
    other = 1 - axis
    for s in shapes:
        if s[other] != shapes[0][other]:
            raise ShapeError(
                f"cannot join {', '.join(map(str, shapes))} along axis {axis}: "
                f"their sizes on axis {other} differ")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def _count(index):
    if isinstance(index, slice):
        return len(range(index.start, index.stop, index.step))
    return len(index)


def getitem(x, rows, cols):
    """`rows` and `cols` as `normalise_index` returns them (it is idempotent)."""
    rows, cols = normalise_index((rows, cols), x)
    return (_count(rows), _count(cols))


def square(x):
    if x[0] != x[1]:
        raise ShapeError(f"needs a square matrix; got {x}")
    return x


def scalar_of_square(x):
    square(x)
    return (1, 1)


def pow(x, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise ShapeError(f"the exponent must be a Python number; got {type(p).__name__}")
    try:
        float(p)
    except OverflowError:
        raise ShapeError(f"the exponent, an int of {len(str(abs(p)))} digits, is too large "
                         "for a float") from None
    return x


def conv2d(image, kernel, stride, padding):
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ShapeError(f"stride must be a positive int; got {stride!r}")
    if padding == "same":
        if stride != 1:
            raise ShapeError(f"padding='same' needs stride=1 (as in torch); got stride={stride}")
        return image
    if padding != "valid":
        raise ShapeError(f"padding must be 'valid' or 'same'; got {padding!r}")
    if kernel[0] > image[0] or kernel[1] > image[1]:
        raise ShapeError(
            f"kernel {kernel} is larger than image {image}; use padding='same' or a smaller kernel")
    return ((image[0] - kernel[0]) // stride + 1, (image[1] - kernel[1]) // stride + 1)


def along(x, axis):
    """A scan or a flip along axis 0 or 1: the operand's shape."""
    _axis(axis)
    return x


def _ints_of(name, v, n, least):
    if not isinstance(v, tuple) or len(v) != n or any(
            isinstance(i, bool) or not isinstance(i, int) or i < least for i in v):
        raise ShapeError(f"{name} must be a tuple of {n} ints >= {least}; got {v!r}")
    return v


def reshape(x, shape):
    """numpy's reshape to 2-D; one side may be -1 (whatever the size leaves)."""
    if not isinstance(shape, tuple) or len(shape) != 2 or any(
            isinstance(i, bool) or not isinstance(i, int) or (i < 1 and i != -1) for i in shape) \
            or shape == (-1, -1):
        raise ShapeError(f"shape must be (rows, cols), ints >= 1, one of them may be -1; "
                         f"got {shape!r}")
    size, known = x[0] * x[1], abs(shape[0] * shape[1])
    if size % known or (-1 not in shape and known != size):
        raise ShapeError(f"cannot reshape {x} ({size} elements) to {shape}")
    return tuple(size // known if i == -1 else i for i in shape)


def pad(x, widths):
    """Zeros around: widths = (top, bottom, left, right)."""
    top, bottom, left, right = _ints_of("widths", widths, 4, 0)
    return (x[0] + top + bottom, x[1] + left + right)


def tile(x, reps):
    r, c = _ints_of("reps", reps, 2, 1)
    return (x[0] * r, x[1] * c)


def broadcast_to(x, shape):
    _ints_of("shape", shape, 2, 1)
    if any(m != n and m != 1 for m, n in zip(x, shape)):
        raise ShapeError(f"cannot broadcast {x} to {shape}: a side must be equal or 1")
    return shape


def triangle(x, k):
    """tril and triu: the operand's shape; k an int (the diagonal, 0 the main one)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise ShapeError(f"k must be an int; got {k!r}")
    return x


def clip(x, lo, hi):
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ShapeError(f"{name} must be a number; got {v!r}")
    if not lo <= hi:
        raise ShapeError(f"lo must be at most hi; got lo={lo!r}, hi={hi!r}")
    return x


def where(a, b, mask):
    """The operands broadcast; the mask (rows of bools) of that shape."""
    out = broadcast(a, b)
    if not isinstance(mask, tuple) or not all(isinstance(r, tuple) for r in mask) or \
            not all(isinstance(v, bool) for r in mask for v in r):
        raise ShapeError("mask must be rows of bools (a tuple of tuples)")
    got = (len(mask), len(mask[0]) if mask else 0)
    if got != out or any(len(r) != got[1] for r in mask):
        raise ShapeError(f"mask of shape {got}; the operands {a} and {b} broadcast to {out}")
    return out


def maxpool2d(x, size, stride):
    for name, v in (("size", size), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ShapeError(f"{name} must be a positive int; got {v!r}")
    if size > min(x):
        raise ShapeError(f"a window of {size}x{size} is larger than {x}")
    return ((x[0] - size) // stride + 1, (x[1] - size) // stride + 1)


def solve(a, b):
    square(a)
    if b[0] != a[0]:
        raise ShapeError(f"cannot solve {a} X = B for B of {b}: B needs {a[0]} rows")
    return b


def normalise_index(key, shape):
    """Turn `x[key]` into (rows, cols): each a positive-step slice with concrete
    bounds, or a tuple of non-negative ints. An int keeps its axis (the result
    stays 2-D)."""
    if not isinstance(key, tuple):
        key = (key, slice(None))
    if len(key) != 2:
        raise ShapeError(f"a matrix takes x[rows, cols]; got {len(key)} indices")
    return tuple(_axis_index(k, n, what) for k, n, what in zip(key, shape, ("row", "column")))


def _axis_index(k, n, what):
    if isinstance(k, slice):
        start, stop, step = k.indices(n)
        step = max(-n, min(step, n))  # a step beyond the axis selects one element: keep it small
        if step > 0:
            if not range(start, stop, step):
                raise ShapeError(f"slice {k} selects no {what}s of {n}")
            return slice(start, stop, step)
        k = range(start, stop, step)  # a negative step becomes explicit indices
    elif hasattr(k, "__index__") and not isinstance(k, bool):  # an int keeps its axis
        i = _checked(k.__index__(), n, what)
        return slice(i, i + 1, 1)
    if isinstance(k, (range, list, tuple)) or hasattr(k, "tolist"):
        out = tuple(_checked(i, n, what) for i in (k.tolist() if hasattr(k, "tolist") else k))
        if not out:
            raise ShapeError(f"no {what}s selected")
        return out
    raise ShapeError(f"{what} index must be an int, slice, range or list of ints; "
                     f"got {type(k).__name__}")


def _checked(i, n, what):
    if isinstance(i, bool) or not isinstance(i, int):
        raise ShapeError(f"{what} indices must be ints; got {i!r}")
    if not -n <= i < n:
        raise ShapeError(f"{what} index {i} is out of range for {n} {what}s")
    return i % n
