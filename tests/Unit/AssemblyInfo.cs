using System.Runtime.Versioning;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;

[assembly: SupportedOSPlatform("linux")]
