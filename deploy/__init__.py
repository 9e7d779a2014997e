"""Deployment manifests (Ray Serve, KubeRay) and the checks that guard the images."""
