"""Where outputs and input images are kept: a local directory or an S3 bucket; input image checks."""
