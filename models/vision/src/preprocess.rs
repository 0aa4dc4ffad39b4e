//! Image input as torchvision's ImageNet evaluation transform computes it on PIL images:
//! decode, convert to RGB (grayscale replicated, alpha dropped, as PIL's `convert("RGB")`),
//! `Resize(shorter side)` with PIL's antialiased resampling, `CenterCrop`, `ToTensor` (/255),
//! `Normalize(mean, std)`.
//!
//! The resampling is PIL's `ImagingResample` (Resample.c) transcribed: separable filters whose
//! support widens with the downscale factor, coefficients normalised then quantised to 22-bit
//! fixed point, horizontal pass then vertical, each rounded and clipped to 8 bits. On the same
//! decoded pixels it gives PIL's bytes exactly.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VisionError};

/// The resampling filter of the resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// PIL `BILINEAR` (torchvision's default).
    Bilinear,
    /// PIL `BICUBIC` (a = −0.5; timm's usual choice).
    Bicubic,
}

impl Interpolation {
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }
    fn filter(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// An 8-bit RGB image, row-major, channels interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Resize, crop and normalisation of a backbone's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Target of the shorter side before cropping (torchvision `Resize(int)`).
    pub resize: usize,
    /// Side of the square center crop.
    pub crop: usize,
    pub interpolation: Interpolation,
    /// Per-channel mean and std applied to `[0, 1]` pixels.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Self::imagenet()
    }
}

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocess {
    /// torchvision's ImageNet evaluation transform: Resize(256), CenterCrop(224), ImageNet
    /// mean/std.
    pub fn imagenet() -> Self {
        Preprocess {
            resize: 256,
            crop: 224,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The same with the TensorFlow EfficientNet-Lite normalisation: `(255·x − 127) / 128`.
    pub fn lite() -> Self {
        Preprocess {
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
            ..Self::imagenet()
        }
    }

    /// Number of values of one preprocessed image (`3 × crop × crop`).
    pub fn len(&self) -> usize {
        3 * self.crop * self.crop
    }

    pub fn is_empty(&self) -> bool {
        self.crop == 0
    }

    /// Decode an image file (JPEG or PNG; grayscale and alpha become RGB) and preprocess it:
    /// `[3, crop, crop]` values, channel-major.
    pub fn load_image(&self, path: impl AsRef<Path>) -> Result<Vec<f32>> {
        Ok(self.normalize(&self.resize_crop(&decode_rgb(path.as_ref())?)))
    }

    /// Preprocess interleaved 8-bit RGB pixels of an `h × w` image.
    pub fn from_rgb_u8(&self, pixels: &[u8], h: usize, w: usize) -> Result<Vec<f32>> {
        if pixels.len() != h * w * 3 || h == 0 || w == 0 {
            return Err(VisionError::InvalidInput(format!(
                "{} RGB bytes for a {h}x{w} image (expected {})",
                pixels.len(),
                h * w * 3
            )));
        }
        let img = Rgb8 {
            width: w,
            height: h,
            data: pixels.to_vec(),
        };
        Ok(self.normalize(&self.resize_crop(&img)))
    }

    /// Preprocess 8-bit grayscale pixels of an `h × w` image (e.g. a 28×28 Fashion-MNIST item),
    /// replicated to RGB first as PIL's `convert("RGB")` does.
    pub fn from_gray_u8(&self, pixels: &[u8], h: usize, w: usize) -> Result<Vec<f32>> {
        if pixels.len() != h * w || h == 0 || w == 0 {
            return Err(VisionError::InvalidInput(format!(
                "{} grayscale bytes for a {h}x{w} image (expected {})",
                pixels.len(),
                h * w
            )));
        }
        let data = pixels.iter().flat_map(|&p| [p, p, p]).collect();
        Ok(self.normalize(&self.resize_crop(&Rgb8 {
            width: w,
            height: h,
            data,
        })))
    }

    /// `Resize(self.resize)` then `CenterCrop(self.crop)`, in 8 bits as PIL computes them.
    pub fn resize_crop(&self, img: &Rgb8) -> Rgb8 {
        let (w, h) = (img.width, img.height);
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        // torchvision: new_long = int(size * long / short)
        let new_long = ((self.resize * long) as f64 / short as f64) as usize;
        let (nw, nh) = if w <= h {
            (self.resize, new_long)
        } else {
            (new_long, self.resize)
        };
        let resized = resample(img, nw, nh, self.interpolation);
        center_crop(&resized, self.crop, self.crop)
    }

    /// `ToTensor` + `Normalize`: `[3, H, W]` f32, `(x / 255 − mean) / std` per channel in f32.
    pub fn normalize(&self, img: &Rgb8) -> Vec<f32> {
        let n = img.width * img.height;
        let mut out = vec![0f32; 3 * n];
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            for i in 0..n {
                out[c * n + i] = (img.data[i * 3 + c] as f32 / 255.0 - m) / s;
            }
        }
        out
    }

    /// Stack preprocessed images into a `[B, 3, crop, crop]` tensor on `device`.
    pub fn batch(&self, images: &[Vec<f32>], device: &Device) -> Result<Tensor<4>> {
        let n = self.len();
        if let Some((i, bad)) = images.iter().enumerate().find(|(_, v)| v.len() != n) {
            return Err(VisionError::InvalidInput(format!(
                "image {i} has {} values, this preprocessing makes {n}",
                bad.len()
            )));
        }
        let flat: Vec<f32> = images.iter().flatten().copied().collect();
        Ok(Tensor::from_data(
            TensorData::new(flat, [images.len(), 3, self.crop, self.crop]),
            device,
        ))
    }

    /// Load and preprocess image files into one batch.
    pub fn load_batch<P: AsRef<Path>>(&self, paths: &[P], device: &Device) -> Result<Tensor<4>> {
        let images = paths
            .iter()
            .map(|p| self.load_image(p))
            .collect::<Result<Vec<_>>>()?;
        self.batch(&images, device)
    }
}

/// Decode an image file to 8-bit RGB: grayscale replicated, alpha dropped (PIL's
/// `convert("RGB")`), 16-bit samples rounded to 8. JPEGs go through libjpeg-turbo's decoder
/// (mozjpeg, built from source) with its defaults, as PIL's: accurate integer IDCT, fancy
/// upsampling; other formats (and JPEGs it cannot convert to RGB, e.g. CMYK) through `image`.
pub fn decode_rgb(path: &Path) -> Result<Rgb8> {
    let bytes = std::fs::read(path).map_err(|source| VisionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        if let Some(img) = decode_jpeg_libjpeg(&bytes) {
            return Ok(img);
        }
    }
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .decode()
        .map_err(|e| VisionError::Image {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    let rgb = img.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

/// libjpeg-turbo's decode to RGB, or `None` when it fails (libjpeg errors unwind as panics).
fn decode_jpeg_libjpeg(bytes: &[u8]) -> Option<Rgb8> {
    std::panic::catch_unwind(|| -> std::io::Result<Rgb8> {
        let mut started = mozjpeg::Decompress::new_mem(bytes)?.rgb()?;
        let (width, height) = (started.width(), started.height());
        let data = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(Rgb8 { width, height, data })
    })
    .ok()
    .and_then(|r| r.ok())
    .filter(|img| img.data.len() == img.width * img.height * 3)
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`: for each output pixel the first input
/// index, the tap count and fixed-point weights (`ksize` per output).
fn coefficients(
    in_size: usize,
    out_size: usize,
    filter: Interpolation,
) -> (usize, Vec<(usize, usize)>, Vec<i32>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = filter.filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = v * (1i64 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    (ksize, bounds, kk)
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// PIL `Image.resize((out_w, out_h), filter)` of an RGB image.
pub fn resample(img: &Rgb8, out_w: usize, out_h: usize, filter: Interpolation) -> Rgb8 {
    let mut cur = img.clone();
    if out_w != img.width {
        let (ksize, bounds, kk) = coefficients(img.width, out_w, filter);
        let mut data = vec![0u8; out_w * img.height * 3];
        for y in 0..img.height {
            let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
            for (xx, &(xmin, xmax)) in bounds.iter().enumerate() {
                let k = &kk[xx * ksize..xx * ksize + xmax];
                for c in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for (x, &kx) in k.iter().enumerate() {
                        ss += row[(xmin + x) * 3 + c] as i64 * kx as i64;
                    }
                    data[(y * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = Rgb8 {
            width: out_w,
            height: img.height,
            data,
        };
    }
    if out_h != cur.height {
        let (ksize, bounds, kk) = coefficients(cur.height, out_h, filter);
        let w = cur.width;
        let mut data = vec![0u8; w * out_h * 3];
        for (yy, &(ymin, ymax)) in bounds.iter().enumerate() {
            let k = &kk[yy * ksize..yy * ksize + ymax];
            for x in 0..w * 3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for (y, &ky) in k.iter().enumerate() {
                    ss += cur.data[(ymin + y) * w * 3 + x] as i64 * ky as i64;
                }
                data[yy * w * 3 + x] = clip8(ss);
            }
        }
        cur = Rgb8 {
            width: w,
            height: out_h,
            data,
        };
    }
    cur
}

/// torchvision `CenterCrop`: offsets `round((size − crop) / 2)` with Python's round-half-even;
/// zero padding first when the crop is larger than the image.
pub fn center_crop(img: &Rgb8, crop_w: usize, crop_h: usize) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    if crop_w > w || crop_h > h {
        let (pl, pt) = (crop_w.saturating_sub(w) / 2, crop_h.saturating_sub(h) / 2);
        let (pr, pb) = (
            crop_w.saturating_sub(w).div_ceil(2),
            crop_h.saturating_sub(h).div_ceil(2),
        );
        let (nw, nh) = (w + pl + pr, h + pt + pb);
        let mut data = vec![0u8; nw * nh * 3];
        for y in 0..h {
            let dst = ((y + pt) * nw + pl) * 3;
            data[dst..dst + w * 3].copy_from_slice(&img.data[y * w * 3..(y + 1) * w * 3]);
        }
        return center_crop(
            &Rgb8 {
                width: nw,
                height: nh,
                data,
            },
            crop_w,
            crop_h,
        );
    }
    let top = ((h - crop_h) as f64 / 2.0).round_ties_even() as usize;
    let left = ((w - crop_w) as f64 / 2.0).round_ties_even() as usize;
    let mut data = Vec::with_capacity(crop_w * crop_h * 3);
    for y in top..top + crop_h {
        data.extend_from_slice(&img.data[(y * w + left) * 3..(y * w + left + crop_w) * 3]);
    }
    Rgb8 {
        width: crop_w,
        height: crop_h,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_round_half_to_even() {
        let img = Rgb8 {
            width: 5,
            height: 1,
            data: (0..15).collect(),
        };
        // (5 - 2) / 2 = 1.5 -> 2
        assert_eq!(center_crop(&img, 2, 1).data, vec![6, 7, 8, 9, 10, 11]);
        let img = Rgb8 {
            width: 7,
            height: 1,
            data: (0..21).collect(),
        };
        // (7 - 2) / 2 = 2.5 -> 2
        assert_eq!(center_crop(&img, 2, 1).data[0], 6);
    }

    #[test]
    fn same_size_is_identity() {
        let img = Rgb8 {
            width: 3,
            height: 2,
            data: (0..18).map(|v| v * 13).collect(),
        };
        assert_eq!(resample(&img, 3, 2, Interpolation::Bilinear), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Rgb8 {
            width: 37,
            height: 29,
            data: vec![200; 37 * 29 * 3],
        };
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let out = resample(&img, 256, 200, f);
            assert!(out.data.iter().all(|&v| v == 200));
            let out = resample(&img, 5, 4, f);
            assert!(out.data.iter().all(|&v| v == 200));
        }
    }
}
