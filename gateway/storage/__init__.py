"""Object storage for re-hosted images: the `ObjectStore` protocol and its S3, local and memory backends."""
