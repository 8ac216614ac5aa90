//! Small fixed media served at `/_sim/media/…` so tests have URLs to hand to
//! Instagram (`image_url`), TikTok (`video_url`) and bytes for YouTube.

/// A 1×1 JPEG (125 bytes).
pub(crate) const SAMPLE_JPG: &[u8] = include_bytes!("media/sample.jpg");
/// An MP4 with `ftyp`, an empty `moov` and a zeroed `mdat` (a few hundred bytes).
pub(crate) const SAMPLE_MP4: &[u8] = include_bytes!("media/sample.mp4");
