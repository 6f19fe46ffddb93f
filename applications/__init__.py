"""tfformer's bundled applications, built only from tfformer's public API."""
