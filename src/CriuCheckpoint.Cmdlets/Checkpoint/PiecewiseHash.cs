namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// <see cref="FileHash"/>'s hash of bytes that arrive in order (an archive entry as it is unpacked, the log as it is
/// copied): each piece's XXH128 as the piece fills, and their XXH128 at the end. A piece is closed only when a byte
/// past it arrives, so a file of exactly one piece stays one piece.
/// </summary>
internal sealed class PiecewiseHash
{
    private readonly long pieceSize;
    private readonly List<byte[]> closed = new();
    private Xxh128 piece = new();
    private long inPiece;

    public PiecewiseHash(long pieceSize = FileHash.PieceSize) => this.pieceSize = pieceSize;

    public void Append(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (inPiece == pieceSize)
            {
                closed.Add(piece.GetCurrentHash());
                piece = new Xxh128();
                inPiece = 0;
            }

            var take = (int)Math.Min(data.Length, pieceSize - inPiece);
            piece.Append(data[..take]);
            inPiece += take;
            data = data[take..];
        }
    }

    public string ToHex() => FileHash.ToHex(FileHash.Combine([.. closed, piece.GetCurrentHash()]));
}
