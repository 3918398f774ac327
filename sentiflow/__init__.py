"""sentiflow: a real-time multilingual sentiment pipeline built as a supervised tree of actors.

Subpackages, with dependencies pointing one way (api, actors -> models, stores, runtime;
supervisors -> runtime; runtime imports nothing of the rest):

- ``runtime``: the actor core (Actor, ActorRef, bounded Mailbox, ActorSystem, introspection).
- ``supervisors``: Erlang/OTP-style supervision on top of the runtime.
- ``models``: language ID, preprocessing, classifiers, calibration, training; no event loop.
- ``stores``: result and trend storage behind one interface.
- ``actors``: the pipeline's actors, thin glue between runtime, models and stores.
- ``api``: the Quart REST API and the console.
- ``config``: typed settings and the supervision tree's wiring.
"""

__version__ = "0.1.0"
