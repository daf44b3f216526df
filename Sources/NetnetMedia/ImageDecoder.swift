import CFFmpeg

/// Decode the first video frame of an image or video file (jpg, png, bmp, … via FFmpeg's image2 demuxer; any video too).
///
/// Stateless: every call opens, decodes and frees its own FFmpeg objects, so it may be called
/// from any thread, concurrently.
public enum ImageDecoder {
    /// SWS flags of the final YUV/RGB → BGR24 step (see FrameConverter for the two-step handling of
    /// chroma-subsampled sources): bilinear, full chroma interpolation, accurate rounding.
    /// SWS_ACCURATE_RND also keeps swscale off its table-driven yuv420p→RGB fast path, which neither
    /// interpolates chroma nor rounds exactly. RGB, gray and palette sources are converted losslessly.
    static let conversionFlags: Int32 = SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT

    /// Decodes the first frame of the best video stream of `path` into packed BGR24 at its native size;
    /// `path` "-" reads standard input (FFmpeg's `pipe:0`: the image format is found from its bytes,
    /// e.g. the png_pipe or jpeg_pipe demuxer; messages name it "-"). Frames the decoder marks as
    /// corrupt are skipped. Any thread (one reader of standard input at a time).
    ///
    /// Throws `MediaError`: missing file ("path: No such file or directory"), not an image/video
    /// ("path: Invalid data found when processing input"), no video stream ("path: no video stream"),
    /// no decodable frame ("path: Invalid data found when processing input (no decodable video frame; …)"),
    /// a picture over `maxPixels` (width × height; <= 0: no limit), refused before it is allocated
    /// ("path: a 16000x16000 frame (256000000 pixels) is over the limit of 67108864 pixels per frame").
    public static func decodeFirstFrame(path: String, maxPixels: Int = VideoSourceOptions.defaultMaxFramePixels) throws -> BGRImage {
        // pattern_type=none: a literal path, even if it contains '%' or '*' (image2 sequences are not wanted here).
        let limit = max(0, maxPixels)
        let input = path == "-"
            ? try MediaInput(url: "pipe:0", name: "-", maxPixels: limit)
            : try MediaInput(url: path, options: ["pattern_type": "none"], maxPixels: limit)
        let index = try input.bestVideoStreamIndex()
        let declared = input.pictureSize(ofStream: index)
        if limit > 0, declared.0 > 0, declared.1 > 0, declared.0 * declared.1 > limit {
            throw VideoDecoder.limitError(path, width: declared.0, height: declared.1, maxPixels: limit)
        }
        let decoder = try VideoDecoder(input: input, streamIndex: index, maxPixels: limit)
        let packet = try Packet()
        let frame = try Frame()
        let converter = try FrameConverter(outputFormat: AV_PIX_FMT_BGR24, flags: conversionFlags)

        var lastErrorCode: Int32 = 0
        var corruptFrames = 0

        // Pulls every frame the decoder has ready; returns the first clean one.
        func drain() throws -> BGRImage? {
            var errorsInARow = 0
            while true {
                let got: VideoDecoder.Receive
                do { got = try decoder.receive(into: frame) } catch let error as MediaError {
                    if let size = decoder.refusedFrameSize { throw VideoDecoder.limitError(path, width: size.width, height: size.height, maxPixels: limit) }
                    lastErrorCode = error.code   // a damaged frame; keep going
                    errorsInARow += 1
                    if errorsInARow > 16 { return nil }
                    continue
                }
                errorsInARow = 0
                switch got {
                case .frame:
                    if frame.isCorrupt { corruptFrames += 1; continue }
                    return try converter.bgrImage(from: frame, subject: path)
                case .needsInput, .endOfStream:
                    return nil
                }
            }
        }

        while try input.read(into: packet) {
            guard packet.streamIndex == decoder.streamIndex else { continue }
            var sent = false
            while !sent {
                do { sent = try decoder.send(packet) } catch let error as MediaError {
                    if let size = decoder.refusedFrameSize { throw VideoDecoder.limitError(path, width: size.width, height: size.height, maxPixels: limit) }
                    lastErrorCode = error.code   // corrupt packet: skip it
                    break
                }
                if let image = try drain() { return image }
            }
        }
        // Drain delayed frames (frame threads, B-frames). With frame threads an earlier packet's
        // decode error can surface here; it is only reported if no frame comes out at all.
        do { _ = try decoder.send(nil) } catch let error as MediaError { lastErrorCode = error.code }
        if let image = try drain() { return image }
        if let size = decoder.refusedFrameSize { throw VideoDecoder.limitError(path, width: size.width, height: size.height, maxPixels: limit) }

        var why = "no decodable video frame"
        if corruptFrames > 0 { why += "; \(corruptFrames) corrupt frame(s) skipped" }
        if lastErrorCode < 0 { why += "; \(decoder.codecName) decoder: \(MediaError.ffmpegMessage(for: lastErrorCode))" }
        throw MediaError("\(path): \(MediaError.ffmpegMessage(for: AVError.invalidData)) (\(why))",
                         code: lastErrorCode < 0 ? lastErrorCode : AVError.invalidData)
    }
}
