"""cupy.cuda.runtime: the few CUDA runtime calls minvert makes, answered without a GPU."""
import os


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return int(os.environ.get("STRICT_CUPY_DEVICES", "2"))


def getDeviceProperties(device):
    if not 0 <= device < getDeviceCount():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {"name": b"Strict CuPy stand-in (NumPy)", "totalGlobalMem": 80 << 30,
            "major": 9, "minor": 0, "multiProcessorCount": 1}


def deviceSynchronize():
    pass


def runtimeGetVersion():
    return 12080


def driverGetVersion():
    return 12080
