"""The weight holder and its engine side without a GPU: the holder's command line, its socket (a real unix
socket passing a real descriptor: any file's stands in for the GPU allocation's), the message an engine
parses, the plan that maps parameters onto the holder's layout, the resume message's weight_holder, and how
the engine carries it to its cores. test_weight_holder_cuda.py runs the CUDA side where there is a GPU."""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import msgpack
import pytest

from conftest import ENGINE_ROOT, TINY_ARGS, wait_for
from engine_host import core, host, resume, scheduler, weight_holder
from engine_host import weight_share as ws
from engine_host.options import FailureCode, StartupError
from engine_host.pipeline import ControlFailed
from engine_host.protocol import ErrorCode

UUID = "GPU-6e958214-c14c-a354-be55-57c19dc69863"


def _offer(tensors=(("model-00001-of-00002.safetensors", "embed.weight", "BF16", (8, 4)),
                    ("model-00002-of-00002.safetensors", "norm.weight", "F32", (4,)))) -> ws.Offer:
    layout, span = ws.lay_out(list(tensors))
    files = tuple(ws.FileIdentity(name, 1000 + i, 1_700_000_000_000_000_000 + i)
                  for i, name in enumerate(sorted({t[0] for t in tensors})))
    return ws.Offer(UUID, -(-span // 4096) * 4096, files, tuple(layout))


def _engine_files(offer: ws.Offer) -> dict:
    return {f.name: (f.size, f.mtime_ns) for f in offer.files}


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def stand_in(tmp_path):
    """A descriptor of an ordinary file, standing in for the exported GPU allocation."""
    path = tmp_path / "allocation"
    path.write_bytes(b"weights")
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


@pytest.fixture
def server(tmp_path, stand_in):
    """server(offer=_offer(), uid=None) -> a started OfferServer on tmp_path/holder.sock, stopped after."""
    started = []

    def start(offer=None, uid=None):
        s = weight_holder.OfferServer(str(tmp_path / ws.SOCKET_NAME), ws.encode(offer or _offer()),
                                      stand_in, uid)
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# ---------------------------------------------------------------- layout


def test_layout_puts_each_tensor_at_the_next_256_byte_boundary_in_the_given_order():
    tensors = [("a", "x", "BF16", (3,)), ("a", "y", "F32", (2, 2)), ("b", "empty", "U8", (0,)),
               ("b", "z", "U8", (5,)), ("b", "scalar", "F64", ())]
    layout, span = ws.lay_out(tensors)
    assert [(e.name, e.offset, e.nbytes) for e in layout] == [
        ("x", 0, 6), ("y", 256, 16), ("empty", 512, 0), ("z", 512, 5), ("scalar", 768, 8)]
    assert span == 776


# ---------------------------------------------------------------- the socket


def test_an_engine_gets_the_offer_and_a_descriptor_of_the_same_allocation(server, stand_in, tmp_path):
    holder = server()
    assert stat.S_IMODE(os.stat(holder.path).st_mode) == 0o600
    offer, fd = ws.receive_offer(holder.path)
    try:
        assert offer == _offer()
        assert fd != stand_in and not os.get_inheritable(fd)
        mine, theirs = os.fstat(stand_in), os.fstat(fd)
        assert (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    finally:
        os.close(fd)
    assert ws.receive_offer(holder.path)[0] == offer  # every connection gets it
    wait_for(lambda: holder.served == 2, what="two engines served")


def test_the_wire_format_is_a_big_endian_length_then_json_with_the_descriptor_on_it(server):
    holder = server()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.connect(holder.path)
        data, fds, _, _ = socket.recv_fds(channel, 1 << 16, 4)
        while True:
            more = channel.recv(1 << 16)
            if not more:
                break
            data += more
    for fd in fds:
        os.close(fd)
    assert len(fds) == 1
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    message = json.loads(data[4:])
    assert set(message) == {"version", "gpu_uuid", "bytes", "files", "layout"} and message["version"] == 1
    assert message["layout"][1] == {"file": "model-00002-of-00002.safetensors", "name": "norm.weight",
                                    "dtype": "F32", "shape": [4], "offset": 256, "nbytes": 16}
    assert message["files"][0] == {"name": "model-00001-of-00002.safetensors", "size": 1000,
                                   "mtime_ns": 1_700_000_000_000_000_000}


def test_a_layout_larger_than_the_socket_buffers_arrives_whole(server):
    tensors = [(f"model-{i % 7:05d}.safetensors", f"layers.{i}.weight", "BF16", (64, i + 1))
               for i in range(20_000)]
    big = _offer(tensors)
    assert len(ws.encode(big)) > 1 << 20
    offer, fd = ws.receive_offer(server(big).path)
    os.close(fd)
    assert offer == big


def test_a_connection_from_another_uid_is_closed_unanswered(server):
    before = _open_fds()
    holder = server(uid=os.getuid() + 1)
    with pytest.raises(OSError, match="closed the connection"):
        ws.receive_offer(holder.path)
    wait_for(lambda: holder.refused == 1, what="the connection refused")
    assert holder.served == 0
    holder.stop()
    assert _open_fds() == before  # neither side kept a descriptor


def test_peer_credentials_name_this_process():
    a, b = socket.socketpair()
    with a, b:
        assert ws.peer_credentials(a) == (os.getpid(), os.getuid(), os.getgid())


def test_stopping_removes_the_socket(server):
    holder = server()
    holder.stop()
    assert not os.path.exists(holder.path)
    with pytest.raises(OSError):
        ws.receive_offer(holder.path)


def test_a_stale_socket_file_is_replaced(server, tmp_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / ws.SOCKET_NAME))
    stale.close()
    offer, fd = ws.receive_offer(server().path)
    os.close(fd)
    assert offer == _offer()


def _one_shot_holder(path: str, payload: bytes, fds: list) -> threading.Thread:
    """A holder that answers one connection with payload and fds as given, however wrong."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer():
        with listener:
            connection, _ = listener.accept()
            with connection:
                socket.send_fds(connection, [payload], fds)

    thread = threading.Thread(target=answer)
    thread.start()
    return thread


@pytest.mark.parametrize("payload, count, reason", [
    (struct.pack(">I", 5) + b"{nope", 1, "not JSON"),
    (ws.encode(_offer()), 2, "2 descriptors"),
    (ws.encode(_offer()), 0, "0 descriptors"),
    (struct.pack(">I", ws.MAX_MESSAGE_BYTES + 1), 1, "over"),
    (struct.pack(">I", 2) + b"[]", 1, "not a JSON object"),
])
def test_what_is_not_an_offer_is_refused_and_leaks_no_descriptor(tmp_path, stand_in, payload, count, reason):
    path = str(tmp_path / ws.SOCKET_NAME)
    before = _open_fds()
    thread = _one_shot_holder(path, payload, [stand_in] * count)
    with pytest.raises(ws.HolderMismatch, match=reason):
        ws.receive_offer(path)
    thread.join()
    assert _open_fds() == before


def test_a_holder_that_hangs_up_early_is_an_os_error(tmp_path, stand_in):
    path = str(tmp_path / ws.SOCKET_NAME)
    before = _open_fds()
    thread = _one_shot_holder(path, ws.encode(_offer())[:40], [stand_in])
    with pytest.raises(OSError, match="before its whole message"):
        ws.receive_offer(path)
    thread.join()
    assert _open_fds() == before


# ---------------------------------------------------------------- the message


def _message(**changes) -> dict:
    message = _offer().to_json()
    message.update(changes)
    return message


def _entry(**changes) -> dict:
    entry = dict(_offer().to_json()["layout"][0])
    entry.update(changes)
    return entry


@pytest.mark.parametrize("message, reason", [
    ([], "not a JSON object"),
    (_message(version=2), "version 2"),
    (_message(gpu_uuid=None), "gpu_uuid"),
    (_message(bytes=-1), "bytes"),
    (_message(bytes=True), "bytes"),
    (_message(files=[{"name": "a", "size": 1}]), "mtime_ns"),
    (_message(files="a"), "files"),
    (_message(layout=[_entry(offset=100)]), "does not fit"),
    (_message(layout=[_entry(nbytes=63)]), "does not fit"),
    (_message(layout=[_entry(offset=1 << 20)]), "does not fit"),
    (_message(layout=[_entry(dtype="Q4")]), "bad entry"),
    (_message(layout=[_entry(shape=[8, -4])]), "dimension"),
    (_message(layout=[_entry(), _entry(offset=256)]), "twice"),
])
def test_a_malformed_message_is_a_mismatch(message, reason):
    with pytest.raises(ws.HolderMismatch, match=reason):
        ws.parse_offer(message)


def test_a_well_formed_message_parses_to_the_offer_sent():
    assert ws.parse_offer(json.loads(ws.encode(_offer())[4:])) == _offer()


# ---------------------------------------------------------------- the plan


def _wanted(dtype="BF16", shape=(8, 4), name="embed.weight", file="model-00001-of-00002.safetensors"):
    return [ws.WantedTensor(name, file, shape, dtype),
            ws.WantedTensor("norm.weight", "model-00002-of-00002.safetensors", (4,), "F32")]


def test_the_plan_views_tensors_whose_dtype_agrees_and_converts_the_others():
    offer = _offer()
    plan = ws.plan_mapping(_wanted(dtype="F16"), offer, UUID, _engine_files(offer))
    assert [(s.index, s.entry.name, s.entry.offset, s.view) for s in plan] == [
        (0, "embed.weight", 0, False), (1, "norm.weight", 256, True)]


@pytest.mark.parametrize("wanted, uuid, files, reason", [
    (_wanted(), "GPU-00000000-0000-0000-0000-000000000000", None, "is on GPU GPU-6e95"),
    (_wanted(shape=(4, 8)), UUID, None, r"embed.weight is \[8, 4\], this engine's \[4, 8\]"),
    (_wanted(name="lm_head.weight"), UUID, None, "no tensor lm_head.weight"),
    (_wanted(file="model-00002-of-00002.safetensors"), UUID, None, "no tensor embed.weight of model-00002"),
    (_wanted(file="consolidated.safetensors"), UUID, None, "did not load consolidated.safetensors"),
    (_wanted(), UUID, {"model-00001-of-00002.safetensors": (1000, 5)}, "not the file the holder loaded"),
])
def test_the_plan_refuses_weights_that_are_not_this_engines(wanted, uuid, files, reason):
    offer = _offer()
    with pytest.raises(ws.HolderMismatch, match=reason):
        ws.plan_mapping(wanted, offer, uuid, _engine_files(offer) if files is None else
                        {**_engine_files(offer), **files})


# ---------------------------------------------------------------- the holder's command line


def _model_dir(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"")
    return model


def test_the_holder_takes_a_model_directory_a_device_and_a_run_directory(tmp_path):
    model = _model_dir(tmp_path)
    options = weight_holder.parse_args(["--model", str(model), "--device", "1", "--run-dir", "run"])
    assert options == weight_holder.HolderOptions(str(model), 1, os.path.abspath("run"))


@pytest.mark.parametrize("args, code, text", [
    (["--device", "0", "--run-dir", "r"], FailureCode.BAD_HOLDER_ARGS, "--model"),
    (["--model", "M", "--run-dir", "r"], FailureCode.BAD_HOLDER_ARGS, "--device"),
    (["--model", "M", "--device", "0"], FailureCode.BAD_HOLDER_ARGS, "--run-dir"),
    (["--model", "M", "--device", "x", "--run-dir", "r"], FailureCode.BAD_HOLDER_ARGS, "invalid int"),
    (["--model", "M", "--device", "-1", "--run-dir", "r"], FailureCode.BAD_HOLDER_ARGS, ">= 0"),
    (["--model", "M", "--device", "0", "--run-dir", "r", "--port", "1"], FailureCode.BAD_HOLDER_ARGS,
     "unrecognized"),
    (["--model", "missing", "--device", "0", "--run-dir", "r"], FailureCode.MODEL_NOT_FOUND, "no such"),
    (["--model", "empty", "--device", "0", "--run-dir", "r"], FailureCode.MODEL_NOT_FOUND,
     "no *.safetensors"),
])
def test_a_bad_holder_command_line_names_the_problem(tmp_path, args, code, text):
    _model_dir(tmp_path)
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "model") if a == "M" else str(tmp_path / a) if a in ("missing", "empty") else a
            for a in args]
    with pytest.raises(StartupError) as caught:
        weight_holder.parse_args(args)
    assert caught.value.code == code and text in caught.value.message


def _run_holder(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ENGINE_ROOT}
    return subprocess.run([sys.executable, "-m", "engine_host.weight_holder", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _failed(run_dir) -> dict:
    with open(os.path.join(run_dir, "failed.json")) as f:
        return json.load(f)


def test_the_holder_process_writes_failed_json_for_a_missing_model(tmp_path):
    run_dir = tmp_path / "run"
    done = _run_holder("--model", str(tmp_path / "missing"), "--device", "0", "--run-dir", str(run_dir))
    assert done.returncode == 1, done.stderr
    assert _failed(run_dir)["code"] == "model_not_found"
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    assert "weight-holder[" in done.stderr


def test_the_holder_process_exits_2_for_a_bad_command_line(tmp_path):
    run_dir = tmp_path / "run"
    done = _run_holder("--model", str(_model_dir(tmp_path)), "--run-dir", str(run_dir))
    assert done.returncode == 2, done.stderr
    failed = _failed(run_dir)
    assert failed["code"] == "bad_holder_args" and "--device" in failed["message"]


# ---------------------------------------------------------------- the resume message


def _resume_line(**fields) -> bytes:
    return json.dumps({"curve_secret_key": "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6", **fields}).encode()


def test_a_resume_message_may_name_a_weight_holder_socket():
    assert resume.parse_resume(_resume_line()).weight_holder is None
    path = "/var/lib/criucheckpoint/holders/gpu0/holder.sock"
    assert resume.parse_resume(_resume_line(weight_holder=path)).weight_holder == path


@pytest.mark.parametrize("path", ["holder.sock", "run/holder.sock", "/run/holder.socket", "/run/other.sock",
                                  "/run/holder.sock\0", "/run/\0/holder.sock", "", 5, ["/run/holder.sock"]])
def test_a_weight_holder_must_be_an_absolute_holder_socket_path(path):
    with pytest.raises(ValueError, match="weight_holder"):
        resume.parse_resume(_resume_line(weight_holder=path))


# ---------------------------------------------------------------- the engine side


class _Stage:
    def __init__(self, release_failure=None):
        self.reacquired_with = None
        self._release_failure = release_failure

    def release(self) -> None:
        if self._release_failure is not None:
            raise self._release_failure

    def reacquire(self, **args) -> dict:
        self.reacquired_with = args
        return {"weights": 0.1}

    def report(self) -> dict:
        return {"device": "cuda:0", "weights_from": "holder"}


def test_a_core_passes_the_resumes_weight_holder_to_its_stage():
    stage = _Stage()
    reply = core._reacquire(0, stage, weight_holder="/run/holder.sock")
    assert reply == ("ok", {"device": "cuda:0", "weights_from": "holder", "phases": {"weights": 0.1}})
    assert stage.reacquired_with == {"weight_holder": "/run/holder.sock"}


def test_a_core_that_cannot_release_says_why_and_that_the_engine_must_stop():
    status, body = core._release(0, _Stage(RuntimeError("1 mapping(s) of a weight holder's GPU memory")))
    assert status == "failed" and body["code"] == FailureCode.ENGINE_FAILED
    assert body["message"] == "core-0: RuntimeError: 1 mapping(s) of a weight holder's GPU memory"


@pytest.mark.parametrize("replies, expected", [
    ([{"device": "cpu"}], {}),
    ([{"weights_from": "holder"}], {"weights_from": "holder"}),
    ([{"weights_from": "files"}], {"weights_from": "files"}),
    ([{"weights_from": "holder"}, {"weights_from": "files"}], {"weights_from": "files"}),
])
def test_ready_json_says_where_released_weights_came_from(replies, expected):
    assert host._weights_from(replies) == expected


class _Outbox:
    def __init__(self):
        self.sent = []

    def send(self, identity, payload) -> None:
        self.sent.append(payload)


class _Pipeline:
    def __init__(self, reports=None, failure=None):
        self._reports, self._failure = reports or [{}], failure
        self.commands = []

    def control(self, command, **args):
        self.commands.append(command)
        if self._failure is not None:
            raise self._failure
        return self._reports


class _Plan:
    tokenizer = None
    max_model_len = max_num_seqs = max_batched_tokens = 8


def _draining(pipeline, keep_caches: bool):
    loop = scheduler.Scheduler(pipeline, _Plan(), scheduler.EngineStatus(), lifecycle=None)
    loop._outbox = _Outbox()
    loop._status.state = scheduler.DRAINING
    loop._prepare = scheduler._PendingPrepare(b"client", "p1", time.monotonic() + 30, keep_caches,
                                              canary=False, inventory={})
    return loop


def _error_of(payload: bytes) -> tuple:
    reply = msgpack.unpackb(payload)
    assert reply["kind"] == "error" and reply["id"] == "p1"
    return reply["code"], reply["message"]


def test_keeping_caches_of_weights_mapped_from_a_holder_is_refused_and_the_engine_serves_on():
    pipeline = _Pipeline([{"gpu_memory_bytes": 1, "weight_mappings": 1}])
    loop = _draining(pipeline, keep_caches=True)
    loop._advance_prepare()
    assert pipeline.commands == ["report"] and loop._status.state == scheduler.READY
    code, message = _error_of(loop._outbox.sent[-1])
    assert code == ErrorCode.CHECKPOINT_UNSUPPORTED and "weight holder" in message


def test_a_release_that_fails_answers_the_prepare_and_stops_the_engine():
    failure = ControlFailed(FailureCode.ENGINE_FAILED, "release failed: core-0: RuntimeError: mapping open")
    loop = _draining(_Pipeline(failure=failure), keep_caches=False)
    with pytest.raises(ControlFailed):
        loop._advance_prepare()
    code, message = _error_of(loop._outbox.sent[-1])
    assert code == ErrorCode.ENGINE_ERROR and "mapping open" in message and "the engine stops" in message


def test_a_tiny_engine_resumed_with_a_weight_holder_has_nothing_to_map_and_serves(start_engine, tmp_path):
    engine = start_engine(*TINY_ARGS)
    c = engine.client()
    before = c.generate("Hello", max_tokens=10, ignore_eos=True)["text"]
    assert c.call("prepare_checkpoint")["state"] == "prepared"
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    engine.write_resume(port=0, weight_holder=str(tmp_path / "nowhere" / ws.SOCKET_NAME))
    wait_for(lambda: os.path.exists(engine.path("ready.json")), what="ready.json after resume")
    ready = engine.wait_ready()
    assert "weights_from" not in ready and "resume_reacquire" in ready["phases"]
    assert engine.client().generate("Hello", max_tokens=10, ignore_eos=True)["text"] == before
