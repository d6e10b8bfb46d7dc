"""HTTP routes, one module per resource; ``cloud_api.app`` includes their routers."""
