using System.Globalization;
using CriuCheckpoint.Commands;
using CriuCheckpoint.Core;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The cell texts of the format views: each one line and never wider than its column.</summary>
public sealed class ViewFormatTests
{
    public ViewFormatTests() => CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

    [Fact]
    public void A_cell_that_fits_is_left_as_it_is() => Assert.Equal("tiny-16m", ViewFormat.Cell("tiny-16m", 8));

    [Fact]
    public void A_longer_cell_is_cut_to_its_width_ending_in_an_ellipsis() =>
        Assert.Equal("demo-engine-wit…", ViewFormat.Cell("demo-engine-with-a-long-name", 16));

    [Fact]
    public void A_cell_is_one_line_each_control_character_a_space() =>
        Assert.Equal("a  b c d e", ViewFormat.Cell("a\r\nb\tc\u001bd\u0000e", 20));

    [Fact]
    public void A_cut_never_splits_a_surrogate_pair()
    {
        var cell = ViewFormat.Cell("ab\U0001F600cdef", 4);

        Assert.Equal("ab…", cell);
    }

    [Fact]
    public void No_text_is_an_empty_cell() => Assert.Equal(string.Empty, ViewFormat.Cell(null, 10));

    [Fact]
    public void A_path_that_fits_is_left_whole() => Assert.Equal("/srv/store/abc", ViewFormat.PathCell("/srv/store/abc", 14));

    [Fact]
    public void A_long_path_keeps_its_last_whole_folders_after_an_ellipsis() =>
        Assert.Equal("…/store/f7af925bb208243a", ViewFormat.PathCell("/tmp/views-8bd3cd0f/store/f7af925bb208243a", 24));

    [Fact]
    public void A_path_whose_last_name_does_not_fit_keeps_the_end_of_that_name()
    {
        var cell = ViewFormat.PathCell("/tmp/f7af925bb208243a", 8);

        Assert.Equal("…208243a", cell);
        Assert.Equal(8, cell.Length);
    }

    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1.0 KiB")]
    [InlineData(53_511_289L, "51.0 MiB")]
    [InlineData(1_610_612_736L, "1.5 GiB")]
    [InlineData(150L << 40, "150.0 TiB")]
    public void Sizes_are_in_the_largest_binary_unit_with_one_decimal(long bytes, string expected) =>
        Assert.Equal(expected, ViewFormat.Bytes(bytes));

    [Fact]
    public void A_size_is_never_wider_than_ten_characters() =>
        Assert.All(new[] { 1023L, (1L << 20) - 1, (1L << 30) - 1, (1L << 40) - 1, long.MaxValue }, b => Assert.True(ViewFormat.Bytes(b).Length <= 10, ViewFormat.Bytes(b)));

    [Fact]
    public void Phase_lines_name_each_phase_in_order_with_its_seconds_aligned()
    {
        var timings = new PhaseTimings();
        timings.Add("launch", TimeSpan.FromMilliseconds(13));
        timings.Add("import_backend", TimeSpan.FromMilliseconds(120));

        Assert.Equal(new[] { "launch         0.013 s", "import_backend 0.120 s" }, ViewFormat.PhaseLines(timings).Split(Environment.NewLine));
    }

    [Fact]
    public void Work_beside_the_phases_follows_them_with_its_bytes_and_rate()
    {
        var timings = new PhaseTimings();
        timings.Add("criu-restore", TimeSpan.FromMilliseconds(1400));
        timings.AddBackground(new BackgroundWork("weight-prefetch", 9.812, 16_060_000_000));

        Assert.Equal(new[] { "criu-restore    1.400 s", "weight-prefetch 9.812 s beside them, 16.06 GB at 1.64 GB/s" },
            ViewFormat.PhaseLines(timings).Split(Environment.NewLine));
    }

    [Fact]
    public void Nothing_timed_is_no_phase_lines() => Assert.Equal(string.Empty, ViewFormat.PhaseLines(null));
}
