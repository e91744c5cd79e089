"""LangChain's standard vector-store suite (package `langchain-tests`), run against Cairn."""

from typing import Generator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from cairndb.langchain import CairnVectorStore


class TestCairnStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path) -> Generator[VectorStore, None, None]:  # type: ignore
        store = CairnVectorStore(self.get_embeddings(), path=str(tmp_path / "db"))
        try:
            yield store
        finally:
            store.close()
