using System.Management.Automation;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Lets -Engine take an engine's name or id as well as an Engine object: -Engine my-engine.</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
public sealed class EngineTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        if (value is not string nameOrId)
        {
            return value;
        }

        var registry = EngineRegistry.Default;
        var matches = registry.Find(nameOrId);
        if (matches.Count != 1)
        {
            throw new ArgumentTransformationMetadataException(matches.Count == 0
                ? $"No engine named '{nameOrId}' is known in {registry.Root}. Get-VllmEngine lists them."
                : $"'{nameOrId}' matches {matches.Count} engines: {string.Join(", ", matches.Select(m => m.Name))}.");
        }

        return new EngineInspector(registry).DescribeAsync(matches[0], probe: false, TimeSpan.Zero, CancellationToken.None)
            .GetAwaiter().GetResult();
    }
}
