"""cupy.cuda: devices, streams, synchronisation, imitated on the host."""
from .. import _core
from . import runtime  # noqa: F401


class Device:
    """A CUDA device id; ``use()`` or ``with`` makes it current for new arrays."""

    def __init__(self, device=None):
        self.id = _core.current_device() if device is None else int(device)
        self._previous = []

    def _check(self):
        if not 0 <= self.id < runtime.getDeviceCount():
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def use(self):
        self._check()
        _core._state["device"] = self.id

    def __enter__(self):
        self._previous.append(_core.current_device())
        self.use()
        return self

    def __exit__(self, *exc):
        _core._state["device"] = self._previous.pop()

    def synchronize(self):
        self._check()

    @property
    def compute_capability(self):
        return "90"

    @property
    def mem_info(self):
        return (64 << 30, 80 << 30)

    def __int__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_device_id():
    return _core.current_device()


def is_available():
    return runtime.getDeviceCount() > 0


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


Stream.null = Stream(null=True)
