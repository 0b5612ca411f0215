"""GPU memory shared between processes through the CUDA driver's virtual memory API, by file descriptor.

The weight holder allocates (allocate()), fills and exports its allocation as a POSIX file descriptor;
an engine that receives the descriptor over a unix socket maps it read-only (import_fd()). Legacy CUDA IPC
(cuIpcGetMemHandle) cannot serve here: its handles do not open across PID namespaces, and a restored
engine lives in one of its own. A descriptor passed by SCM_RIGHTS goes anywhere the socket reaches.

libcuda.so.1 is called through ctypes (no CUDA toolkit needed), on the device's primary context, the one
torch uses, made current on the calling thread first. Every call is checked: a failure raises CudaError
naming the function and the CUresult's name. Nothing here imports torch: a Mapping exposes
__cuda_array_interface__, so torch.as_tensor(mapping, device=...) views it without a copy.

open_mappings() counts the mappings this process has open: an engine must have none when it is
checkpointed (a CUDA checkpoint cannot carry memory another process exported).
"""
from __future__ import annotations

import ctypes
import threading
from typing import Optional

_CU_MEM_ALLOCATION_TYPE_PINNED = 1
_CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR = 1
_CU_MEM_LOCATION_TYPE_DEVICE = 1
_CU_MEM_ACCESS_FLAGS_PROT_READ = 1
_CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3
_CU_MEM_ALLOC_GRANULARITY_RECOMMENDED = 1
_CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 102
_CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED = 103

_CUresult = ctypes.c_int
_CUdevice = ctypes.c_int
_CUdeviceptr = ctypes.c_ulonglong
_CUcontext = ctypes.c_void_p
_CUmemGenericAllocationHandle = ctypes.c_ulonglong


class CudaError(RuntimeError):
    """A driver call failed: `function` and `code` (the CUresult's name, e.g. CUDA_ERROR_INVALID_VALUE)."""

    def __init__(self, function: str, code: str):
        super().__init__(f"{function} failed: {code}")
        self.function = function
        self.code = code


class _Location(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class _AllocFlags(ctypes.Structure):
    _fields_ = [("compressionType", ctypes.c_ubyte), ("gpuDirectRDMACapable", ctypes.c_ubyte),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 4)]


class _AllocationProp(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("requestedHandleTypes", ctypes.c_int), ("location", _Location),
                ("win32HandleMetaData", ctypes.c_void_p), ("allocFlags", _AllocFlags)]


class _AccessDesc(ctypes.Structure):
    _fields_ = [("location", _Location), ("flags", ctypes.c_int)]


_P = ctypes.POINTER
# The driver functions used, with their argument types. None of them is one that cuda.h #defines to a
# _v2 (or later) symbol, so each is looked up by its own name.
_SIGNATURES = {
    "cuInit": [ctypes.c_uint],
    "cuGetErrorName": [_CUresult, _P(ctypes.c_char_p)],
    "cuDeviceGet": [_P(_CUdevice), ctypes.c_int],
    "cuDeviceGetAttribute": [_P(ctypes.c_int), ctypes.c_int, _CUdevice],
    "cuDevicePrimaryCtxRetain": [_P(_CUcontext), _CUdevice],
    "cuCtxSetCurrent": [_CUcontext],
    "cuMemGetAllocationGranularity": [_P(ctypes.c_size_t), _P(_AllocationProp), ctypes.c_int],
    "cuMemCreate": [_P(_CUmemGenericAllocationHandle), ctypes.c_size_t, _P(_AllocationProp),
                    ctypes.c_ulonglong],
    "cuMemAddressReserve": [_P(_CUdeviceptr), ctypes.c_size_t, ctypes.c_size_t, _CUdeviceptr,
                            ctypes.c_ulonglong],
    "cuMemMap": [_CUdeviceptr, ctypes.c_size_t, ctypes.c_size_t, _CUmemGenericAllocationHandle,
                 ctypes.c_ulonglong],
    "cuMemSetAccess": [_CUdeviceptr, ctypes.c_size_t, _P(_AccessDesc), ctypes.c_size_t],
    "cuMemExportToShareableHandle": [ctypes.c_void_p, _CUmemGenericAllocationHandle, ctypes.c_int,
                                     ctypes.c_ulonglong],
    "cuMemImportFromShareableHandle": [_P(_CUmemGenericAllocationHandle), ctypes.c_void_p, ctypes.c_int],
    "cuMemUnmap": [_CUdeviceptr, ctypes.c_size_t],
    "cuMemAddressFree": [_CUdeviceptr, ctypes.c_size_t],
    "cuMemRelease": [_CUmemGenericAllocationHandle],
}


class _Driver:
    """libcuda.so.1, loaded on first use; call() checks the CUresult."""

    def __init__(self):
        self._lib = None
        self._lock = threading.Lock()
        self._contexts: dict = {}  # device ordinal -> its primary context

    def _load(self):
        with self._lock:
            if self._lib is None:
                try:
                    lib = ctypes.CDLL("libcuda.so.1")
                except OSError as exc:
                    raise CudaError("dlopen(libcuda.so.1)", str(exc)) from None
                for name, argtypes in _SIGNATURES.items():
                    function = getattr(lib, name)
                    function.argtypes, function.restype = argtypes, _CUresult
                self._lib = lib
                self.call("cuInit", 0)
        return self._lib

    def call(self, name: str, *args) -> None:
        result = getattr(self._lib or self._load(), name)(*args)
        if result != 0:
            raise CudaError(name, self._error_name(result))

    def _error_name(self, result: int) -> str:
        text = ctypes.c_char_p()
        if self._lib.cuGetErrorName(result, ctypes.byref(text)) != 0 or not text.value:
            return f"CUresult {result}"
        return text.value.decode("ascii", "replace")

    def use_device(self, ordinal: int) -> None:
        """Make the device's primary context (torch's) current on the calling thread."""
        context = self._contexts.get(ordinal)
        if context is None:
            device = _CUdevice()
            self.call("cuDeviceGet", ctypes.byref(device), ordinal)
            for attribute, what in ((_CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
                                     "virtual memory management"),
                                    (_CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                     "POSIX file descriptor handles")):
                value = ctypes.c_int()
                self.call("cuDeviceGetAttribute", ctypes.byref(value), attribute, device)
                if not value.value:
                    raise CudaError("cuDeviceGetAttribute", f"device {ordinal} does not support {what}")
            context = _CUcontext()
            self.call("cuDevicePrimaryCtxRetain", ctypes.byref(context), device)
            self._contexts[ordinal] = context
        self.call("cuCtxSetCurrent", context)


_driver = _Driver()
_open_lock = threading.Lock()
_open = 0


def open_mappings() -> int:
    """How many Mappings of this process are open (not closed yet)."""
    return _open


def _count(delta: int) -> None:
    global _open
    with _open_lock:
        _open += delta


def _prop(device: int) -> _AllocationProp:
    prop = _AllocationProp()
    prop.type = _CU_MEM_ALLOCATION_TYPE_PINNED
    prop.requestedHandleTypes = _CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
    prop.location = _Location(_CU_MEM_LOCATION_TYPE_DEVICE, device)
    return prop


def granularity(device: int) -> int:
    """The size an allocation on the device is rounded up to (the driver's recommended granularity)."""
    _driver.use_device(device)
    value = ctypes.c_size_t()
    _driver.call("cuMemGetAllocationGranularity", ctypes.byref(value), ctypes.byref(_prop(device)),
                 _CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)
    return value.value


class Mapping:
    """`size` bytes of one physical allocation mapped at device address `ptr`, readable by `device` and,
    if `writable`, writable. close() unmaps it, frees the address range and releases this process's handle
    (the memory itself is freed once no process holds a handle or a mapping of it)."""

    def __init__(self, handle: int, size: int, device: int, writable: bool):
        self.size, self.device, self.writable = size, device, writable
        self._handle: Optional[int] = handle
        self.ptr = 0
        try:
            _driver.use_device(device)
            ptr = _CUdeviceptr()
            _driver.call("cuMemAddressReserve", ctypes.byref(ptr), size, 0, 0, 0)
            self.ptr = ptr.value
            _driver.call("cuMemMap", ptr, size, 0, handle, 0)
            access = _AccessDesc(_Location(_CU_MEM_LOCATION_TYPE_DEVICE, device),
                                 _CU_MEM_ACCESS_FLAGS_PROT_READWRITE if writable
                                 else _CU_MEM_ACCESS_FLAGS_PROT_READ)
            _driver.call("cuMemSetAccess", ptr, size, ctypes.byref(access), 1)
        except CudaError:
            self._undo(mapped=self.ptr != 0)
            raise
        _count(1)

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def __cuda_array_interface__(self) -> dict:
        """The whole range as bytes. Its read-only flag stays False even for a read-only mapping: torch
        refuses the flag, and the mapping's own protection makes a write fault."""
        if self.closed:
            raise ValueError("the mapping is closed")
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.ptr, False), "strides": None,
                "version": 3}

    def export_fd(self) -> int:
        """A new file descriptor for the allocation (the caller closes it); another process that receives
        it maps the same memory with import_fd()."""
        _driver.use_device(self.device)
        fd = ctypes.c_int(-1)
        _driver.call("cuMemExportToShareableHandle", ctypes.byref(fd), self._handle,
                     _CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0)
        return fd.value

    def close(self) -> None:
        if self.closed:
            return
        _driver.use_device(self.device)
        self._undo(mapped=True)
        _count(-1)

    def _undo(self, mapped: bool) -> None:
        """Unmap, free the range, release the handle: each step that was done, every one attempted."""
        failures = []
        steps = []
        if mapped:
            steps += [("cuMemUnmap", self.ptr, self.size), ("cuMemAddressFree", self.ptr, self.size)]
        steps.append(("cuMemRelease", self._handle))
        for name, *args in steps:
            try:
                _driver.call(name, *args)
            except CudaError as exc:
                failures.append(exc)
        self._handle, self.ptr = None, 0
        if failures:
            raise failures[0]


def allocate(device: int, size: int) -> Mapping:
    """A new allocation of at least `size` bytes (rounded up to the granularity) on `device`, exportable
    as a file descriptor, mapped read-write here."""
    step = granularity(device)
    size = -(-max(size, 1) // step) * step
    handle = _CUmemGenericAllocationHandle()
    _driver.call("cuMemCreate", ctypes.byref(handle), size, ctypes.byref(_prop(device)), 0)
    return Mapping(handle.value, size, device, writable=True)


def import_fd(fd: int, size: int, device: int) -> Mapping:
    """Map, read-only on `device`, the allocation another process exported as `fd` (`size`: its size).
    The descriptor stays the caller's to close (the mapping does not need it)."""
    _driver.use_device(device)
    handle = _CUmemGenericAllocationHandle()
    _driver.call("cuMemImportFromShareableHandle", ctypes.byref(handle), ctypes.c_void_p(fd),
                 _CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
    return Mapping(handle.value, size, device, writable=False)
