"""Reading CT pixels: DICOM (validated, shared by data tools and the server) and DeepLesion PNGs."""
