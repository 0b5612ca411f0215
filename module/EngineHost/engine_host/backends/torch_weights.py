"""Weights that stay out of a checkpoint image (engine arg weights_from_source), and model directories
written from in-memory models (the random-model tool). Imported only where torch is.

SourceWeights maps each parameter of the loaded model to the tensor of the model directory's safetensors
files that holds it (same name, or the name with/without the "model." prefix; same shape). release()
points every mapped parameter at an empty tensor, so its memory goes back to the caching allocator (and,
after torch.cuda.empty_cache(), to the driver) while the Parameter objects, and so the modules, stay as
they are. start_reload() allocates each parameter's tensor anew on the device, points the parameter at it at
once (so CUDA graphs captured meanwhile use the new addresses), and fills it from the files with
several threads in the background; wait() joins them: each reads byte ranges with pread() into its own
two pinned staging buffers (CUDA) or straight into the tensor (CPU), and copies them to the GPU with
non_blocking=True on its own CUDA stream while it reads the next range into the other buffer. A tensor whose
file dtype differs from the parameter's is copied in the file's dtype and converted on the device.
Parameters no file holds stay resident (logged at startup).

map_from_holder() is the other way back: a weight holder (engine_host/weight_holder.py) that keeps the same
files' tensors in GPU memory sends its allocation's descriptor; the engine maps it read-only
(engine_host/cuda_vmm.py) and points each parameter at a view of its tensor there, or at a converted copy
where the dtypes differ, after checking (engine_host/weight_share.py) that the holder's GPU, files and
tensors are the ones this engine would read. release() then unmaps it as well.
"""
from __future__ import annotations

import logging
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch

from .. import cuda_vmm, weight_share
from .. import safetensors_files as stf

log = logging.getLogger("engine_host.torch")

TORCH_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
                "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
                "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        TORCH_DTYPES[_name] = getattr(torch, _attr)
SAFETENSORS_DTYPES = {v: k for k, v in TORCH_DTYPES.items()}

LOAD_THREADS = 8  # 16 measured slower on an H200 host (1.11 s against 0.82 s for 16 GB)
STAGING_BYTES = 32 << 20  # per staging buffer; each CUDA loader thread has two


def _pread_into(fd: int, array, offset: int) -> None:
    """Fill a writable C-contiguous buffer (numpy array) with the file's bytes at offset."""
    view = memoryview(array).cast("B")
    done, total = 0, view.nbytes
    while done < total:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise EOFError(f"unexpected end of file at byte {offset + done}")
        done += n


def _empty_host_cache() -> None:
    """Give the pinned staging memory back (it would otherwise stay cached in the process)."""
    memory = getattr(getattr(torch, "accelerator", None), "memory", None)
    fn = getattr(memory, "empty_host_cache", None) or getattr(torch._C, "_host_emptyCache", None)
    if fn is not None:
        try:
            fn()
        except Exception as exc:  # best effort: only costs host memory
            log.warning("could not empty the pinned host memory cache: %s", exc)


def _parameters_by_every_name(model: torch.nn.Module) -> dict:
    """{name: Parameter} with every name of a tied (shared) parameter."""
    try:
        return dict(model.named_parameters(remove_duplicate=False))
    except TypeError:  # torch < 2.0
        return {f"{prefix}.{name}" if prefix else name: p
                for prefix, module in model.named_modules(remove_duplicate=False)
                for name, p in module._parameters.items() if p is not None}


class SourceWeights:
    def __init__(self, model: torch.nn.Module, directory: str, device: torch.device):
        self._device = device
        self._directory = directory
        entries = stf.read_directory(directory)
        params = _parameters_by_every_name(model)
        self._items: list = []  # (Parameter, TensorEntry)
        covered: set = set()
        skipped = []
        for name, entry in entries.items():
            candidates = [name, "model." + name]
            if name.startswith("model."):
                candidates.append(name[len("model."):])
            param = next((params[c] for c in candidates if c in params), None)
            if param is None or id(param) in covered:
                continue
            if tuple(param.shape) != entry.shape or entry.dtype not in TORCH_DTYPES:
                skipped.append(f"{name} ({entry.dtype} {list(entry.shape)} in the file, "
                               f"{list(param.shape)} in the model)")
                continue
            covered.add(id(param))
            self._items.append((param, entry))
        resident = [(n, p) for n, p in model.named_parameters() if id(p) not in covered]
        self.nbytes = sum(p.numel() * p.element_size() for p, _ in self._items)
        self.released = False
        self._mapping: Optional[cuda_vmm.Mapping] = None  # a holder's memory that parameters view
        if skipped:
            log.warning("weights_from_source: %d tensor(s) of the files do not fit the model and are "
                        "not used: %s", len(skipped), "; ".join(skipped[:5]))
        if resident:
            log.warning("weights_from_source: %d parameter(s) (%d bytes) are in no safetensors file "
                        "and stay resident: %s", len(resident),
                        sum(p.numel() * p.element_size() for _, p in resident),
                        ", ".join(n for n, _ in resident[:5]))
        log.info("weights_from_source: %d parameters, %.3f GiB, from %d file(s) in %s",
                 len(self._items), self.nbytes / 2**30, len({e.path for _, e in self._items}),
                 directory)

    @property
    def count(self) -> int:
        return len(self._items)

    def release(self) -> None:
        """Point every mapped parameter at an empty tensor and unmap a holder's memory; the caller empties
        the CUDA cache."""
        self._drop_parameters()
        if self._mapping is not None:
            mapping, self._mapping = self._mapping, None
            mapping.close()
        self.released = True

    def _drop_parameters(self) -> None:
        for param, _ in self._items:
            param.data = torch.empty(0, dtype=param.dtype, device=param.device)

    def start_reload(self) -> "Reload":
        """Allocate every mapped parameter anew and start reading it back from the files."""
        dsts = [torch.empty(entry.shape, dtype=param.dtype, device=self._device)
                for param, entry in self._items]
        for (param, _), dst in zip(self._items, dsts):
            param.data = dst
        return start_loading([(entry, dst) for (_, entry), dst in zip(self._items, dsts)], self._device,
                             on_done=self._reloaded)

    def _reloaded(self) -> None:
        self.released = False

    # ------------------------------------------------------------ from a weight holder

    def map_from_holder(self, path: str) -> int:
        """Point every mapped parameter at the weight holder's copy of its tensor: a view of the holder's
        memory, mapped read-only, where the dtypes agree; a converted copy where they do not. Returns how
        many are views. Raises (the parameters stay released) when the holder cannot be reached, sends
        something else than an offer, or offers weights that are not this engine's: HolderMismatch,
        OSError or cuda_vmm.CudaError, each naming why."""
        if self._device.type != "cuda":
            raise weight_share.HolderMismatch("this engine runs on the CPU")
        offer, fd = weight_share.receive_offer(path)
        try:
            steps = weight_share.plan_mapping(self._wanted(), offer, device_uuid(self._device),
                                              self._file_identities())
            mapping = cuda_vmm.import_fd(fd, offer.bytes, self._device.index)
        finally:
            os.close(fd)
        try:
            self._point_at(mapping, steps)
        except BaseException:
            self._drop_parameters()
            mapping.close()
            raise
        views = sum(1 for step in steps if step.view)
        if views:
            self._mapping = mapping
        else:  # every parameter is a converted copy: the holder's memory is not needed any more
            mapping.close()
        self.released = False
        return views

    def _point_at(self, mapping: cuda_vmm.Mapping, steps: list) -> None:
        whole = torch.as_tensor(mapping, device=self._device)
        for step in steps:
            param, entry = self._items[step.index][0], step.entry
            view = whole[entry.offset:entry.offset + entry.nbytes].view(TORCH_DTYPES[entry.dtype])
            view = view.view(entry.shape)
            param.data = view if step.view else view.to(param.dtype)
        torch.cuda.synchronize(self._device)  # the conversions are done before the mapping may close

    def _relative(self, entry: stf.TensorEntry) -> str:
        return os.path.relpath(entry.path, self._directory)

    def _wanted(self) -> list:
        return [weight_share.WantedTensor(entry.name, self._relative(entry), entry.shape,
                                          SAFETENSORS_DTYPES.get(param.dtype, str(param.dtype)))
                for param, entry in self._items]

    def _file_identities(self) -> dict:
        identities = {}
        for _, entry in self._items:
            name = self._relative(entry)
            if name not in identities:
                st = os.stat(entry.path)
                identities[name] = (st.st_size, st.st_mtime_ns)
        return identities


def device_uuid(device: torch.device) -> str:
    """The GPU's UUID as nvidia-smi and the driver's /proc files write it (GPU-xxxxxxxx-…)."""
    return f"GPU-{torch.cuda.get_device_properties(device).uuid}"


# ---------------------------------------------------------------- loader threads

def start_loading(items: list, device: torch.device, on_done=None, opened: Optional[dict] = None) -> "Reload":
    """Fill each destination tensor of items [(TensorEntry, tensor)] with the entry's bytes from its file,
    converted to the tensor's dtype, with loader threads; on_done() runs once all of it is done. opened:
    {path: descriptor} the caller opened and closes, read by every thread (pread keeps no file position);
    each thread opens the other files itself."""
    work: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    for i in sorted(range(len(items)), key=lambda i: -items[i][0].nbytes):
        work.put(i)
    threads = max(1, min(LOAD_THREADS, os.cpu_count() or 1, len(items)))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="weights")
    futures = [pool.submit(_load_worker, work, items, device, opened or {}) for _ in range(threads)]
    return Reload(pool, futures, device, on_done)


def _load_worker(work: "queue.SimpleQueue[int]", items: list, device: torch.device, opened: dict) -> None:
    fds: dict = dict(opened)
    try:
        if device.type == "cuda":
            _cuda_worker(work, items, device, fds)
        else:
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                _load_cpu(_fd(fds, items[i][0]), *items[i])
    finally:
        for path, fd in fds.items():
            if path not in opened:
                os.close(fd)


def _fd(fds: dict, entry: stf.TensorEntry) -> int:
    fd = fds.get(entry.path)
    if fd is None:
        fd = fds[entry.path] = os.open(entry.path, os.O_RDONLY)
    return fd


def _target(entry: stf.TensorEntry, dst: torch.Tensor) -> torch.Tensor:
    """dst itself, or a tensor in the file's dtype to convert from."""
    source_dtype = TORCH_DTYPES[entry.dtype]
    return dst if source_dtype == dst.dtype else torch.empty(entry.shape, dtype=source_dtype,
                                                             device=dst.device)


def _bytes(target: torch.Tensor, entry: stf.TensorEntry) -> torch.Tensor:
    raw = target.reshape(-1).view(torch.uint8)
    if raw.numel() != entry.nbytes:
        raise RuntimeError(f"{entry.name}: {raw.numel()} bytes in memory, {entry.nbytes} in {entry.path}")
    return raw


def _load_cpu(fd: int, entry: stf.TensorEntry, dst: torch.Tensor) -> None:
    target = _target(entry, dst)
    _pread_into(fd, _bytes(target, entry).numpy(), entry.offset)
    if target is not dst:
        dst.copy_(target)


def _cuda_worker(work: "queue.SimpleQueue[int]", items: list, device: torch.device, fds: dict) -> None:
    torch.cuda.set_device(device)
    stream = torch.cuda.Stream(device=device)
    staging = [torch.empty(STAGING_BYTES, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
    events = [torch.cuda.Event(), torch.cuda.Event()]
    recorded = [False, False]
    turn = 0
    try:
        with torch.cuda.stream(stream):
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    break
                entry, dst = items[i]
                fd = _fd(fds, entry)
                target = _target(entry, dst)
                raw = _bytes(target, entry)
                pos = 0
                while pos < entry.nbytes:
                    n = min(STAGING_BYTES, entry.nbytes - pos)
                    half = turn % 2
                    turn += 1
                    if recorded[half]:
                        events[half].synchronize()  # its previous copy to the GPU is done
                    buffer = staging[half][:n]
                    _pread_into(fd, buffer.numpy(), entry.offset + pos)
                    raw[pos:pos + n].copy_(buffer, non_blocking=True)
                    events[half].record(stream)
                    recorded[half] = True
                    pos += n
                if target is not dst:
                    dst.copy_(target, non_blocking=True)  # same stream: after the bytes landed
    finally:
        stream.synchronize()  # nothing of this thread in flight once it returns


class Reload:
    """Weights being read by loader threads; nothing may read them before wait() returns."""

    def __init__(self, pool: ThreadPoolExecutor, futures: list, device: torch.device, on_done=None):
        self._pool, self._futures, self._device, self._on_done = pool, futures, device, on_done

    def wait(self) -> int:
        """Join the loader threads (raising the first failure); returns how many there were."""
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
            torch.cuda.empty_cache()  # conversion temporaries, cached for the loader threads' streams
            _empty_host_cache()
        if self._on_done is not None:
            self._on_done()
        return len(self._futures)


def trim_host_memory() -> None:
    """Return freed heap pages to the kernel (glibc keeps them otherwise), so that a checkpoint image of
    the process does not carry host copies of weights that were freed."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def release_cuda_memory(device: torch.device) -> None:
    """After the model's weights, pool and graphs are dropped: hand their memory back to the driver."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- writing a model directory

def write_model_dir(model: torch.nn.Module, directory: str, max_shard_bytes: int) -> dict:
    """The model's state dict as sharded safetensors (one tensor at a time through host memory),
    config.json and generation_config.json into `directory` (which must exist). Returns a summary."""
    tensors: dict = {}
    seen: set = set()
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.numel(), tensor.dtype) if tensor.numel() else None
        if key is not None and key in seen:  # a tied weight, stored once (as transformers does)
            continue
        seen.add(key)
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"{name}: dtype {tensor.dtype} has no safetensors name")
        tensors[name] = tensor
    specs = [stf.TensorSpec(name, SAFETENSORS_DTYPES[t.dtype], tuple(t.shape))
             for name, t in tensors.items()]

    def data(spec: stf.TensorSpec):
        host = tensors[spec.name].detach().to("cpu").contiguous()
        return host.reshape(-1).view(torch.uint8).numpy()

    files = stf.write_sharded(directory, specs, data, max_shard_bytes)
    config = model.config
    config.architectures = [type(model).__name__]
    config.save_pretrained(directory)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        try:
            generation.save_pretrained(directory)
        except Exception as exc:  # optional file: the engine does not read it
            log.warning("generation_config.json not written: %s", exc)
    return {"tensors": len(specs), "bytes": sum(s.nbytes for s in specs), "files": files}
