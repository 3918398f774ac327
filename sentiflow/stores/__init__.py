"""Storage of results, aspects, batch jobs and trends behind one interface per concern.

Import the contract and records from here::

    from sentiflow.stores import ResultStore, ResultRecord, open_result_store
"""

from sentiflow.stores.errors import (
    BatchNotFoundError,
    DuplicateBatchError,
    InvalidRecordError,
    StorageClosedError,
    StorageError,
    StorageFullError,
    UnsupportedStoreURLError,
)
from sentiflow.stores.factory import open_result_store
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import (
    AspectSentiment,
    BatchJob,
    BatchView,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    WebhookAttempt,
    WebhookState,
)
from sentiflow.stores.sqlite import SQLiteResultStore

__all__ = [
    "AspectSentiment",
    "BatchJob",
    "BatchNotFoundError",
    "BatchView",
    "ClassificationRequest",
    "ClassificationResult",
    "DuplicateBatchError",
    "InvalidRecordError",
    "ResultRecord",
    "ResultStore",
    "SQLiteResultStore",
    "StorageClosedError",
    "StorageError",
    "StorageFullError",
    "UnsupportedStoreURLError",
    "WebhookAttempt",
    "WebhookState",
    "open_result_store",
]
