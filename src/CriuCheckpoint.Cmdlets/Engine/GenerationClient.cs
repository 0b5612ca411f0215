using CriuCheckpoint.Core;
using CriuCheckpoint.Link;

namespace CriuCheckpoint.Engine;

/// <summary>Runs generate requests on one engine over a shared link; cancelling a request aborts it on the engine.</summary>
internal sealed class GenerationClient
{
    private readonly EngineLink link;
    private readonly EngineInfo engine;

    public GenerationClient(EngineLink link, EngineInfo engine)
    {
        this.link = link;
        this.engine = engine;
    }

    /// <summary>
    /// Generates a completion. <paramref name="onChunk"/> sees each streamed part (with Stream set) and a last part
    /// holding the result. <paramref name="replyTimeout"/> bounds the wait for each reply, not the whole request.
    /// </summary>
    public async Task<GenerationResult> GenerateAsync(string prompt, GenerationOptions options, Action<GenerationChunk>? onChunk, TimeSpan replyTimeout, CancellationToken cancellationToken)
    {
        var request = link.Send(LinkProtocol.Ops.Generate, new GenerateArgs
        {
            Prompt = prompt,
            MaxTokens = options.MaxTokens,
            Temperature = options.Temperature,
            TopP = options.TopP,
            Seed = options.Seed,
            Stop = options.Stop.ToArray(),
            Stream = options.Stream,
        });
        var index = 0;
        try
        {
            while (true)
            {
                var reply = await link.NextReplyAsync(request, replyTimeout, cancellationToken).ConfigureAwait(false);
                if (!reply.IsFinal)
                {
                    var chunk = reply.Read<GenerateChunkReply>();
                    onChunk?.Invoke(new GenerationChunk { RequestId = request.Id, Prompt = prompt, Index = index++, Text = chunk.Text, TokenIds = chunk.TokenIds, Engine = engine });
                    continue;
                }

                var final = reply.Read<GenerateFinalReply>();
                var result = new GenerationResult
                {
                    RequestId = request.Id,
                    Prompt = prompt,
                    Text = final.Text,
                    TokenIds = final.TokenIds,
                    FinishReason = final.FinishReason,
                    PromptTokens = final.PromptTokens,
                    CompletionTokens = final.CompletionTokens,
                    TimeToFirstTokenSeconds = final.TimeToFirstTokenSeconds,
                    DurationSeconds = final.DurationSeconds,
                    Engine = engine,
                };
                if (options.Stream)
                {
                    onChunk?.Invoke(new GenerationChunk { RequestId = request.Id, Prompt = prompt, Index = index, Result = result, Engine = engine });
                }

                return result;
            }
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C or a caller's cancel: the engine must stop spending compute on this request.
            link.Send(LinkProtocol.Ops.Abort, new AbortArgs { RequestId = request.Id });
            throw;
        }
        catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.EngineDied or ErrorIds.LinkTimeout)
        {
            if (e.ErrorId == ErrorIds.LinkTimeout)
            {
                link.Send(LinkProtocol.Ops.Abort, new AbortArgs { RequestId = request.Id });
            }

            throw new CriuCheckpointException(e.ErrorId, e.Kind, $"Engine {engine.Name}: {e.Message}", engine.Name, e,
                new RunDirectory(engine.RunDirectory).LogTail());
        }
        finally
        {
            link.Forget(request);
        }
    }
}
