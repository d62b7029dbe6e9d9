"""hrpred.evaluate"""
