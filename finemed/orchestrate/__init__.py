"""The orchestration: recipes (resolve, run, cache, launch), plans, rehearsals, the report and the stage CLIs'
shared runner. Chains stages through their artifacts; no stage module imports it.
"""
