"""The service tests' fixtures (tiny exported models in a throwaway repository) serve here too."""

from tests.service.conftest import client, model_source, repo  # noqa: F401
