"""hrpred.train"""
