using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class SupportReportTests : IDisposable
{
    private readonly string file = Path.GetTempFileName();

    public void Dispose() => File.Delete(file);

    [Theory]
    [InlineData("always [madvise] never\n", "madvise")]
    [InlineData("[always] madvise never\n", "always")]
    [InlineData("always madvise [never]", "never")]
    [InlineData("always madvise never", null)]
    public void TransparentHugePagesIsTheBracketedMode(string content, string? mode)
    {
        File.WriteAllText(file, content);
        Assert.Equal(mode, SupportReport.ReadTransparentHugePages(file));
    }

    [Fact]
    public void NoTransparentHugePagesWhereTheKernelHasNone() =>
        Assert.Null(SupportReport.ReadTransparentHugePages(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"))));
}
