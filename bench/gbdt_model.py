"""Part (a) of bench/serving.sh: one LightGBM GBDT on 20 features, saved
twice — as an MLflow model (the `lightgbm` flavor, served by `mlflow models
serve` through pyfunc) and as ONNX (onnxmltools) registered in Plinth — plus
the request bodies both servers get (1 and 100 rows). Prints nothing but
errors; writes into OUT_DIR.

  python bench/gbdt_model.py OUT_DIR PLINTH_URL MODEL_NAME
"""

import json
import os
import sys

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.datasets import make_regression

out, plinth_url, name = sys.argv[1:4]
FEATURES = [f"f{i}" for i in range(20)]
X, y = make_regression(n_samples=20_000, n_features=20, noise=10.0, random_state=0)
X = X.astype(np.float32)
model = lgb.LGBMRegressor(n_estimators=100, num_leaves=31, learning_rate=0.1, verbose=-1)
model.fit(pd.DataFrame(X, columns=FEATURES), y)

mlflow.lightgbm.save_model(model, os.path.join(out, "mlflow-model"))

proto = convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, 20]))], target_opset=15)
mlflow.set_tracking_uri(plinth_url)
mlflow.set_experiment("bench-serving")
with mlflow.start_run():
    mlflow.onnx.log_model(proto, name="model", registered_model_name=name)

for rows in (1, 100):
    batch = X[:rows]
    with open(os.path.join(out, f"mlflow-{rows}.json"), "w") as f:
        json.dump({"dataframe_split": {"columns": FEATURES, "data": batch.tolist()}}, f)
    with open(os.path.join(out, f"oip-{rows}.json"), "w") as f:
        json.dump({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 20],
                               "data": batch.reshape(-1).tolist()}]}, f)
# The same rows through LightGBM itself, to check both servers' answers.
np.save(os.path.join(out, "expected.npy"), model.predict(pd.DataFrame(X[:100], columns=FEATURES)))
