"""Reading generation images: roots and confinement, sniffing, decoding, colour, nvJPEG, results."""
