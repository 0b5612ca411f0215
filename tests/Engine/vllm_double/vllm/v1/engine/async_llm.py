"""As vllm/v1/engine/async_llm.py (AsyncLLM) with what it uses from output_processor.py (OutputProcessor,
RequestOutputCollector) and input_processor.py; the EngineCore client is core_client.py.

Signatures, exception types and control flow follow vLLM at commit 00080ee1: generate() is an async
generator of RequestOutput; cancelling it aborts the request (internal abort); an external abort()
ends the generator with a final "abort" output; a dead EngineCore process makes every generator raise
EngineDeadError and every later call raise it at once; utility calls that fail in the core come back as
Exception("Call to <method> method failed: ...").
"""
import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from vllm.config import VllmConfig
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMClientError, VLLMValidationError
from vllm.logprobs import Logprob
from vllm.outputs import STREAM_FINISHED, CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.tokenizers import ByteFallbackTokenizer, IncrementalDetokenizer
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine import FinishReason, PauseMode
from vllm.v1.engine.core_client import AsyncMPClient
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- output processing

class RequestOutputCollector:
    """Collects streamed RequestOutputs per request; DELTA outputs are merged if the consumer lags."""

    def __init__(self, output_kind: RequestOutputKind, request_id: str):
        self.aggregate = output_kind == RequestOutputKind.DELTA
        self.request_id = request_id
        self.output: RequestOutput | BaseException | None = None
        self.ready = asyncio.Event()

    def put(self, output) -> None:
        if self.output is None or isinstance(output, BaseException):
            self.output = output
            self.ready.set()
        elif isinstance(self.output, RequestOutput) and isinstance(output, RequestOutput):
            self.output.add(output, aggregate=self.aggregate)

    async def get(self) -> RequestOutput:
        while (output := self.output) is None:
            await self.ready.wait()
        self.output = None
        self.ready.clear()
        if isinstance(output, BaseException):
            raise output
        return output

    def get_nowait(self) -> RequestOutput | None:
        output = self.output
        if output is not None:
            self.output = None
            self.ready.clear()
        if isinstance(output, BaseException):
            raise output
        return output

    def close(self) -> None:
        pass


class _RequestState:
    def __init__(self, request_id: str, external_id: str, prompt: str | None, prompt_ids: list,
                 params: SamplingParams, queue: RequestOutputCollector):
        self.request_id = request_id
        self.external_req_id = external_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_ids
        self.params = params
        self.queue = queue
        self.detokenizer = IncrementalDetokenizer()
        self.output_text = ""
        self.token_ids: list = []
        self.last_offset = 0
        self.stop_buffer_length = params.output_text_buffer_length
        # vLLM's LogprobsProcessor: one {token id: Logprob} per sampled position, and their running sum.
        self.logprobs: list | None = None if params.logprobs is None else []
        self.cumulative_logprob: float | None = None if params.logprobs is None else 0.0

    def update(self, new_token_ids: list, stop_terminated: bool, new_logprobs: list | None) -> str | None:
        """Detokenize and keep the logprobs; returns the stop string that ended the text, if one did."""
        self.token_ids.extend(new_token_ids)
        if self.logprobs is not None:
            for token, position in zip(new_token_ids, new_logprobs):
                entry = {t: Logprob(logprob, rank) for t, logprob, rank in position}
                self.logprobs.append(entry)
                self.cumulative_logprob += entry[token].logprob
        if stop_terminated and new_token_ids:
            new_token_ids = new_token_ids[:-1]  # the EOS / stop token adds no text
        old_len = len(self.output_text)
        for token in new_token_ids:
            self.output_text += self.detokenizer.add(token)
        for stop in self.params.stop:
            index = self.output_text.find(stop, max(0, old_len - len(stop) + 1))
            if index >= 0:
                self.output_text = self.output_text[:index]
                return stop
        return None

    def get_next_output_text(self, finished: bool, delta: bool) -> str:
        buffer_length = 0 if finished else self.stop_buffer_length
        if not delta:
            return self.output_text[:-buffer_length] if buffer_length else self.output_text
        length = len(self.output_text) - buffer_length
        last_offset = self.last_offset
        if last_offset < length:
            self.last_offset = length
            return self.output_text[last_offset:length]
        return ""

    def make_request_output(self, new_token_ids: list, finish_reason, stop_reason) -> RequestOutput | None:
        finished = finish_reason is not None
        kind = self.params.output_kind
        if not finished and kind == RequestOutputKind.FINAL_ONLY:
            return None
        if finished and finish_reason != FinishReason.STOP or finished and stop_reason is None:
            self.output_text += self.detokenizer.finish()
        delta = kind == RequestOutputKind.DELTA
        logprobs = None
        if self.logprobs is not None:
            first = len(self.logprobs) - len(new_token_ids) if delta else 0
            logprobs = self.logprobs[first:]
        completion = CompletionOutput(
            index=0, text=self.get_next_output_text(finished, delta),
            token_ids=list(new_token_ids) if delta else list(self.token_ids),
            cumulative_logprob=self.cumulative_logprob, logprobs=logprobs,
            finish_reason=str(finish_reason) if finished else None, stop_reason=stop_reason)
        return RequestOutput(request_id=self.external_req_id, prompt=self.prompt,
                             prompt_token_ids=self.prompt_token_ids, prompt_logprobs=None,
                             outputs=[completion], finished=finished, num_cached_tokens=0)


_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.ABORT}


class OutputProcessor:
    def __init__(self):
        self.request_states: dict = {}
        self.external_req_ids: dict = {}

    def add_request(self, state: _RequestState) -> None:
        self.request_states[state.request_id] = state
        self.external_req_ids.setdefault(state.external_req_id, []).append(state.request_id)

    def _finish_request(self, state: _RequestState) -> None:
        self.request_states.pop(state.request_id, None)
        ids = self.external_req_ids.get(state.external_req_id, [])
        if state.request_id in ids:
            ids.remove(state.request_id)
        if not ids:
            self.external_req_ids.pop(state.external_req_id, None)

    def process_outputs(self, engine_core_outputs: list) -> list:
        """Returns the ids that finished here (stop strings) but still run in the core."""
        reqs_to_abort = []
        for out in engine_core_outputs:
            state = self.request_states.get(out["id"])
            if state is None:  # Ignore output for already-aborted request.
                continue
            finish = _FINISH.get(out["finish"]) if out["finish"] else None
            stop_reason = out["stop_reason"]
            stop_string = state.update(out["new"], finish == FinishReason.STOP, out.get("logprobs"))
            if stop_string:
                finish, stop_reason = FinishReason.STOP, stop_string
            request_output = state.make_request_output(out["new"], finish, stop_reason)
            if request_output is not None:
                state.queue.put(request_output)
            if finish is not None:
                self._finish_request(state)
                if out["finish"] is None:
                    reqs_to_abort.append(out["id"])
        return reqs_to_abort

    def abort_requests(self, request_ids: Iterable[str], internal: bool) -> list:
        internal_ids = []
        for request_id in request_ids:
            if internal:
                internal_ids.append(request_id)
            else:
                internal_ids.extend(self.external_req_ids.get(request_id, []))
        aborted = []
        for request_id in internal_ids:
            state = self.request_states.get(request_id)
            if state is None:
                continue
            self._finish_request(state)
            aborted.append(request_id)
            # Produce final abort output.
            output = state.make_request_output([], FinishReason.ABORT, None)
            if output is not None:
                state.queue.put(output)
        return aborted

    def propagate_error(self, e: Exception) -> None:
        for state in self.request_states.values():
            state.queue.put(e)


# ---------------------------------------------------------------- AsyncLLM

class AsyncLLM:
    """An asynchronous wrapper for the vLLM engine (the double)."""

    def __init__(self, vllm_config: VllmConfig, executor_class: type | None, log_stats: bool,
                 usage_context: UsageContext = UsageContext.ENGINE_CONTEXT, mm_registry: Any = None,
                 log_requests: bool = True, start_engine_loop: bool = True,
                 stat_loggers: list | None = None, aggregate_engine_logging: bool = False,
                 client_addresses: dict | None = None, client_count: int = 1,
                 client_index: int = 0) -> None:
        self.vllm_config = vllm_config
        self.model_config = vllm_config.model_config
        self.log_requests = log_requests
        self.log_stats = log_stats
        self._tokenizer = None if self.model_config.skip_tokenizer_init else ByteFallbackTokenizer()
        self.output_processor = OutputProcessor()
        self.engine_core = AsyncMPClient(vllm_config)
        self.output_handler: asyncio.Task | None = None
        try:
            asyncio.get_running_loop()
            self._run_output_handler()
        except RuntimeError:
            pass

    @classmethod
    def from_vllm_config(cls, vllm_config: VllmConfig, start_engine_loop: bool = True,
                         usage_context: UsageContext = UsageContext.ENGINE_CONTEXT,
                         stat_loggers: list | None = None, enable_log_requests: bool = False,
                         aggregate_engine_logging: bool = False, disable_log_stats: bool = False,
                         client_addresses: dict | None = None, client_count: int = 1,
                         client_index: int = 0) -> "AsyncLLM":
        return cls(vllm_config=vllm_config, executor_class=None, start_engine_loop=start_engine_loop,
                   stat_loggers=stat_loggers, log_requests=enable_log_requests,
                   log_stats=not disable_log_stats, usage_context=usage_context)

    @classmethod
    def from_engine_args(cls, engine_args: AsyncEngineArgs, start_engine_loop: bool = True,
                         usage_context: UsageContext = UsageContext.ENGINE_CONTEXT,
                         stat_loggers: list | None = None) -> "AsyncLLM":
        """Create an AsyncLLM from the EngineArgs."""
        vllm_config = engine_args.create_engine_config(usage_context)
        return cls(vllm_config=vllm_config, executor_class=None,
                   log_requests=engine_args.enable_log_requests,
                   log_stats=not engine_args.disable_log_stats, start_engine_loop=start_engine_loop,
                   usage_context=usage_context, stat_loggers=stat_loggers)

    def __del__(self):
        self.shutdown()

    def shutdown(self, timeout: float | None = None) -> None:
        """Shutdown, cleaning up the background proc and IPC."""
        if engine_core := getattr(self, "engine_core", None):
            engine_core.shutdown(timeout=timeout)
        handler = getattr(self, "output_handler", None)
        if handler is not None and not handler.done():
            try:
                handler.get_loop().call_soon_threadsafe(handler.cancel)
            except RuntimeError:
                pass

    async def get_supported_tasks(self) -> tuple:
        if not hasattr(self, "_supported_tasks"):
            self._supported_tasks = tuple(await self.engine_core.call_utility_async("get_supported_tasks"))
        return self._supported_tasks

    # ------------------------------------------------------------ requests

    def _process_prompt(self, prompt: Any) -> tuple:
        if isinstance(prompt, str):
            prompt_text, ids = prompt, None
        elif isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            prompt_text, ids = prompt.get("prompt"), list(prompt["prompt_token_ids"])
        elif isinstance(prompt, dict) and "prompt" in prompt:
            prompt_text, ids = prompt["prompt"], None
        else:
            raise VLLMValidationError(f"Unsupported prompt type: {type(prompt).__name__}")
        if ids is None:
            if self._tokenizer is None:
                raise VLLMValidationError("You cannot pass text prompts when `skip_tokenizer_init=True`")
            ids = self._tokenizer.encode(prompt_text)
        if not ids:
            raise VLLMValidationError("The decoder prompt cannot be empty", parameter="prompt")
        max_model_len = self.model_config.max_model_len
        if len(ids) > max_model_len:
            raise VLLMValidationError(
                f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                f"{max_model_len}. Make sure that `max_model_len` is no smaller than the number of "
                "text tokens.", parameter="input_tokens", value=len(ids))
        vocab = self.model_config.get_vocab_size()
        if max(ids) >= vocab or min(ids) < 0:
            raise VLLMValidationError(f"Token id {max(ids)} is out of vocabulary", parameter="prompt")
        return prompt_text, ids

    def _validate_logprobs(self, params: SamplingParams) -> None:
        """As SamplingParams._validate_logprobs (run by the input processor): -1 is the whole vocabulary."""
        max_logprobs = self.model_config.max_logprobs
        if max_logprobs == -1:
            max_logprobs = self.model_config.get_vocab_size()
        wanted = self.model_config.get_vocab_size() if params.logprobs == -1 else params.logprobs
        if wanted and wanted > max_logprobs:
            raise VLLMValidationError(f"Requested sample logprobs of {wanted}, which is greater than max "
                                      f"allowed: {max_logprobs}", parameter="logprobs", value=wanted)

    async def add_request(self, request_id: str, prompt: Any, params: SamplingParams,
                          arrival_time: float | None = None, lora_request: Any = None,
                          tokenization_kwargs: dict | None = None, trace_headers: Any = None,
                          priority: int = 0, data_parallel_rank: int | None = None,
                          **kwargs: Any) -> RequestOutputCollector:
        """Add new request to the AsyncLLM."""
        if self.errored:
            raise EngineDeadError()
        if not isinstance(params, SamplingParams):
            raise VLLMValidationError("Only SamplingParams are supported by this engine")
        prompt_text, ids = self._process_prompt(prompt)
        self._validate_logprobs(params)
        params = params.clone()
        if params.max_tokens is None:
            params.max_tokens = self.model_config.max_model_len - len(ids)
        internal_id = f"{request_id}-{secrets.token_hex(4)}"
        self._run_output_handler()
        queue = RequestOutputCollector(params.output_kind, internal_id)
        self.output_processor.add_request(_RequestState(internal_id, request_id, prompt_text, ids,
                                                        params, queue))
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        await self.engine_core.add_request_async({
            "id": internal_id, "prompt": ids, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "seed": seed, "ignore_eos": params.ignore_eos,
            "stop_token_ids": list(params.stop_token_ids),
            "logprobs": self.model_config.get_vocab_size() if params.logprobs == -1 else params.logprobs})
        if self.log_requests:
            logger.info("Added request %s.", internal_id)
        return queue

    async def generate(self, prompt: Any, sampling_params: SamplingParams, request_id: str, *,
                       prompt_text: str | None = None, lora_request: Any = None,
                       tokenization_kwargs: dict | None = None, trace_headers: Any = None,
                       priority: int = 0, data_parallel_rank: int | None = None,
                       **kwargs: Any) -> AsyncGenerator[RequestOutput, None]:
        q: RequestOutputCollector | None = None
        try:
            q = await self.add_request(request_id, prompt, sampling_params,
                                       lora_request=lora_request,
                                       tokenization_kwargs=tokenization_kwargs,
                                       trace_headers=trace_headers, priority=priority,
                                       data_parallel_rank=data_parallel_rank)
            finished = False
            while not finished:
                out = q.get_nowait() or await q.get()
                assert isinstance(out, RequestOutput)
                finished = out.finished
                if out is not STREAM_FINISHED:
                    yield out
        # If the request is disconnected by the client, generate()
        # is cancelled or the generator is garbage collected. So,
        # we abort the request if we end up here.
        except (asyncio.CancelledError, GeneratorExit):
            if q is not None:
                await self.abort(q.request_id, internal=True)
            if self.log_requests:
                logger.info("Request %s aborted.", request_id)
            raise
        # Engine is dead. Do not abort since we shut down.
        except EngineDeadError:
            if self.log_requests:
                logger.info("Request %s failed (engine dead).", request_id)
            raise
        # Request validation error.
        except VLLMClientError as e:
            if self.log_requests:
                logger.info("Request %s failed (bad request): %s.", request_id, e)
            raise
        # Unexpected error in the generate() task (possibly recoverable).
        except Exception as e:
            if q is not None:
                await self.abort(q.request_id, internal=True)
            raise EngineGenerateError() from e
        finally:
            if q is not None:
                q.close()

    def _run_output_handler(self) -> None:
        """Background loop: pulls from EngineCore and pushes to AsyncStreams."""
        if self.output_handler is not None:
            return
        engine_core = self.engine_core
        output_processor = self.output_processor

        async def output_handler():
            try:
                while True:
                    outputs = await engine_core.get_output_async()
                    reqs_to_abort = output_processor.process_outputs(outputs)
                    if reqs_to_abort:
                        await engine_core.abort_requests_async(reqs_to_abort)
            except Exception as e:
                logger.error("AsyncLLM output_handler failed: %r", e)
                output_processor.propagate_error(e)

        self.output_handler = asyncio.create_task(output_handler())

    async def abort(self, request_id: str | Iterable[str], internal: bool = False) -> None:
        """Abort RequestId in OutputProcessor and EngineCore."""
        request_ids = (request_id,) if isinstance(request_id, str) else list(request_id)
        all_request_ids = self.output_processor.abort_requests(request_ids, internal)
        await self.engine_core.abort_requests_async(all_request_ids)
        if self.log_requests:
            logger.info("Aborted request(s) %s.", ",".join(request_ids))

    # ------------------------------------------------------------ engine control

    @property
    def tokenizer(self):
        return self._tokenizer

    def get_tokenizer(self):
        if self._tokenizer is None:
            raise ValueError("Unable to get tokenizer because `skip_tokenizer_init=True`")
        return self._tokenizer

    async def check_health(self) -> None:
        if self.errored:
            raise self.dead_error

    async def reset_prefix_cache(self, reset_running_requests: bool = False,
                                 reset_connector: bool = False) -> bool:
        return await self.engine_core.call_utility_async("reset_prefix_cache", reset_running_requests,
                                                         reset_connector)

    async def sleep(self, level: int = 1, mode: PauseMode = "abort") -> None:
        await self.engine_core.call_utility_async("sleep", level, mode)

    async def wake_up(self, tags: list | None = None) -> None:
        await self.engine_core.call_utility_async("wake_up", tags)

    async def is_sleeping(self) -> bool:
        return await self.engine_core.call_utility_async("is_sleeping")

    async def collective_rpc(self, method: str, timeout: float | None = None, args: tuple = (),
                             kwargs: dict | None = None):
        return await self.engine_core.call_utility_async("collective_rpc", method, timeout,
                                                         list(args), kwargs)

    async def checkpoint_prepare(self) -> None:
        await self.collective_rpc("checkpoint_prepare")

    async def checkpoint_restore(self) -> None:
        await self.collective_rpc("checkpoint_restore")

    @property
    def is_running(self) -> bool:
        return self.output_handler is None or not self.output_handler.done()

    @property
    def is_stopped(self) -> bool:
        return self.errored

    @property
    def errored(self) -> bool:
        return self.engine_core.resources.engine_dead or not self.is_running

    @property
    def dead_error(self) -> BaseException:
        return EngineDeadError()
