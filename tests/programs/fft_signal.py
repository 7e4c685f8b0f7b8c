# Signal processing with torch.fft: find the dominant frequencies of a two-tone signal with
# rfft, low-pass filter it by zeroing bins and inverting with irfft, a centred spectrum with
# fft + fftshift, and FFT-based circular convolution.
import math

import torch

fs = 64                                   # samples per second
t = torch.arange(fs, dtype=torch.float32) / fs
signal = torch.sin(2 * math.pi * 5 * t) + 0.5 * torch.sin(2 * math.pi * 20 * t)

spectrum = torch.fft.rfft(signal)
freqs = torch.fft.rfftfreq(signal.numel(), d=1.0 / fs)
print("rfft bins:", spectrum.shape[0], spectrum.dtype)
magnitude = spectrum.abs() / (fs / 2)
top = torch.topk(magnitude, 2)
print("dominant frequencies:", freqs[top.indices].tolist(), "amplitudes:", [round(a, 3) for a in top.values.tolist()])

lowpass = spectrum.clone()
lowpass[freqs > 10] = 0
filtered = torch.fft.irfft(lowpass, n=signal.numel())
clean = torch.sin(2 * math.pi * 5 * t)
print("filtered dtype:", filtered.dtype, "max error vs clean tone: {:.6f}".format((filtered - clean).abs().max().item()))
print("round trip:", torch.allclose(torch.fft.irfft(spectrum, n=fs), signal, atol=1e-5))

x = torch.tensor([1.0, 2.0, 0.0, -1.0, 0.5, 0.0, 0.0, 3.0])
X = torch.fft.fft(x)
print("fft real:", X.real)
print("fft imag:", X.imag)
print("fftshift(fftfreq):", torch.fft.fftshift(torch.fft.fftfreq(8)))
print("fftshift of magnitudes:", torch.fft.fftshift(X.abs()))
print("ifftshift undoes it:", torch.equal(torch.fft.ifftshift(torch.fft.fftshift(x)), x))
print("parseval:", round((x ** 2).sum().item(), 4), round((X.abs() ** 2).sum().item() / 8, 4))

kernel = torch.tensor([0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25])
circ = torch.fft.ifft(torch.fft.fft(x) * torch.fft.fft(kernel)).real
direct = torch.stack([sum(kernel[j] * x[(i - j) % 8] for j in range(8)) for i in range(8)])
print("circular convolution:", circ)
print("matches direct sum:", torch.allclose(circ, direct, atol=1e-6))
image = torch.outer(torch.cos(torch.arange(4.)), torch.sin(torch.arange(4.) + 1))
print("fft2 dc term: {:.4f}".format(torch.fft.fft2(image)[0, 0].real.item()))
print("norm='ortho' energy kept:", torch.allclose(torch.fft.fft(x, norm="ortho").abs().pow(2).sum(), (x ** 2).sum()))
